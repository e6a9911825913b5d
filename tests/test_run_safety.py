"""Nothing is ever lost: refused runs write nothing, finished runs stay as they are, resumes keep the run's
settings and statistics, one run per exp dir, Ctrl-C or SIGTERM leaves a resumable checkpoint, damaged pointers
fall back, and processes that disagree on where to resume all stop with the same error (3 real gloo processes).

Tiny TDNN-LSTM (~3k parameters) on a 16-utterance tone corpus; CLI-level where it is cheap.
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from asr_trainer import checkpoint as ckpt
from asr_trainer.bin.main import main as cli
from asr_trainer.config import load_config
from asr_trainer.data.cuts import load_cuts
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.sync import DistCommunicator, NoSyncConfig, SimCommunicator, run_processes
from asr_trainer.testing.tones import ALPHABET, char_encode, write_tone_corpus
from asr_trainer.train import fault
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.lock import ExpDirLock
from asr_trainer.train.trainer import fit

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["model.tdnn_lstm.conv_dim=8", "model.tdnn_lstm.lstm_dim=8", "model.tdnn_lstm.num_lstm_layers=1"]
TRAIN = ["num_epochs=2", "progress_bar=false", "num_threads=1", "data.max_duration=1.5", "checkpoint.every_steps=2",
         "optim.warmup_steps=2", "log_every=1"]
GTC = ("--sync", "gtc", "--simulate-workers", "2")  # options; the strategy's settings are overrides
TAU = "sync.tau=0.01"
STOP = 3  # the fault hook fires after global step 3, one step after checkpoint-2.pt


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tone_corpus(tmp_path_factory.mktemp("safety"), {"train": 16, "dev": 2})


def _args(corpus: Path, exp: Path, *overrides: str, opts=GTC, resume: bool = False) -> list[str]:
    """``asr-trainer train`` of a GTC run (``opts=()``: the baseline): options first, then ``key=value`` overrides."""
    tau = [TAU] if opts == GTC and not any(o.startswith("sync.tau=") for o in overrides) else []
    return ["train", "--exp-dir", str(exp), "--lang-dir", str(corpus / "lang"), "--cuts-dir", str(corpus / "cuts"),
            "--config", str(ROOT / "conf/train.yaml"), *opts, *(["--resume"] if resume else []),
            *TRAIN, *MODEL, *tau, *overrides]


def _snapshot(exp: Path, logs: bool = True) -> dict[str, tuple[int, int]]:
    """Every file of ``exp`` with its modification time and size (``logs=False``: without ``log/``)."""
    return {str(p.relative_to(exp)): (p.stat().st_mtime_ns, p.stat().st_size) for p in exp.rglob("*")
            if p.is_file() and (logs or p.relative_to(exp).parts[0] != "log")}


def _last_line(err: str) -> str:
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _model(exp: Path, name: str = "epoch-2.pt") -> dict:
    return ckpt.load(exp / name, ckpt.ModelFile).model


def _same_model(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].double(), b[k].double(), rtol=0, atol=1e-6) for k in a)


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):
    """A finished 2-worker simulated GTC run (2 epochs, a checkpoint every 2 steps)."""
    exp = tmp_path_factory.mktemp("finished") / "exp"
    assert cli(_args(corpus, exp)) == 0
    return exp


def test_refused_runs_write_nothing(corpus, finished, capsys):
    before = _snapshot(finished)
    assert cli(_args(corpus, finished, "num_epochs=3")) == 2  # no --resume over existing checkpoints
    assert "pass --resume" in _last_line(capsys.readouterr().err)
    assert cli(_args(corpus, finished, "model.tdnn_lstm.lstm_dim=16", resume=True)) == 2
    assert _last_line(capsys.readouterr().err) == (
        f"asr-trainer train: error: cannot resume {finished}: model.tdnn_lstm.lstm_dim is 8 in the run, 16 in this "
        "command (a resume keeps the run's settings; use a new --exp-dir for other ones)")
    assert cli(_args(corpus, finished, "sync.tau=0.02", resume=True)) == 2
    assert "sync.tau is 0.01 in the run, 0.02 in this command" in _last_line(capsys.readouterr().err)
    assert _snapshot(finished) == before  # not even a log line


def test_finished_run_given_again_changes_nothing_and_takes_over_a_stale_lock(corpus, finished, capsys):
    before = _snapshot(finished, logs=False)
    (finished / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone", "command": "asr-trainer train",
                                                "started": "yesterday"}))  # left by a killed run: not held
    assert cli(_args(corpus, finished, resume=True)) == 0
    err = capsys.readouterr().err
    assert "taking over the stale lock" in err and "pid 999999 on gone" in err
    assert "all 2 epochs are trained already" in err
    assert _snapshot(finished, logs=False) == before and not (finished / ".lock").exists()


def test_a_second_run_into_a_locked_exp_dir_is_refused_naming_the_owner(corpus, finished, capsys):
    before = _snapshot(finished)
    with ExpDirLock(finished):
        assert cli(_args(corpus, finished, resume=True)) == 2
    line = _last_line(capsys.readouterr().err)
    assert f"is in use by another run (pid {os.getpid()} on " in line and sys.argv[0] in line
    assert _snapshot(finished) == before


def test_baseline_rerun_changes_nothing_and_refuses_another_model(corpus, tmp_path, capsys):
    exp = tmp_path / "base"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli(_args(corpus, exp, "num_epochs=1", opts=())) == 0
    assert not [w for w in caught if "eagerly read CutSet" in str(w.message)]  # the sampler streams lazy cuts
    stats = json.loads((exp / "sync_stats.json").read_text())
    assert (stats["strategy"], stats["workers"], stats["steps"]) == ("none", 1, ckpt.read_pointer(exp).step)
    before = _snapshot(exp, logs=False)
    assert cli(_args(corpus, exp, "num_epochs=1", opts=())) == 0  # the baseline always resumes: nothing left to do
    assert _snapshot(exp, logs=False) == before
    capsys.readouterr()
    assert cli(_args(corpus, exp, "num_epochs=2", "model.tdnn_lstm.conv_dim=16", opts=())) == 2
    assert "cannot resume" in _last_line(capsys.readouterr().err) and _snapshot(exp, logs=False) == before


def test_statistics_cover_the_whole_run_and_a_damaged_pointer_falls_back(corpus, finished, tmp_path, monkeypatch,
                                                                          capsys):
    exp = tmp_path / "cut"
    monkeypatch.setenv(fault.AFTER_STEPS_ENV, str(STOP))
    monkeypatch.setenv(fault.MODE_ENV, "raise")
    with pytest.raises(fault.InjectedFault):
        cli(_args(corpus, exp))
    monkeypatch.delenv(fault.AFTER_STEPS_ENV)
    (exp / ckpt.LATEST).write_text('{"files": ["checkpoint-2.pt", "strat')  # a damaged pointer
    capsys.readouterr()
    assert cli(_args(corpus, exp, resume=True)) == 0
    assert "going on from checkpoint-2.pt" in capsys.readouterr().err
    assert _same_model(_model(finished), _model(exp))
    straight, resumed = (json.loads((d / "sync_stats.json").read_text()) for d in (finished, exp))
    assert resumed["steps"] == straight["steps"] > STOP  # every step of the run, not those after the resume
    for key in ("bytes_sent_per_worker_per_step", "payload_bytes_per_worker_per_step", "gtc_density"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-9), key
    rows = [json.loads((d / "train-summary.json").read_text())["epochs"] for d in (finished, exp)]
    assert [(r["epoch"], r["steps"]) for r in rows[0]] == [(r["epoch"], r["steps"]) for r in rows[1]]


@pytest.mark.parametrize("mode", ["sigint", "sigterm"])  # Ctrl-C; a scheduler's preemption
def test_a_stop_signal_stops_with_one_line_and_a_resumable_checkpoint(corpus, finished, tmp_path, mode):
    exp = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           fault.AFTER_STEPS_ENV: str(STOP), fault.MODE_ENV: mode}
    proc = subprocess.run([sys.executable, "-m", "asr_trainer.bin.main", *_args(corpus, exp)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert _last_line(proc.stderr) == (f"asr-trainer train: interrupted: stopped after global step {STOP + 1} "
                                       "(epoch 1) and saved a checkpoint: continue with the same command and --resume")
    pointer = ckpt.read_pointer(exp)
    assert (pointer.step, pointer.mid_epoch) == (STOP + 1, True)
    assert cli(_args(corpus, exp, resume=True)) == 0
    assert _same_model(_model(finished), _model(exp))


def _craft(exp: Path, rank: int, step: int, lead: bool) -> None:
    """Rank ``rank``'s files of a 3-process checkpoint set after ``step`` (and, ``lead``, the model and pointer)."""
    settings = ckpt.RunSettings({}, {}, 3, len(ALPHABET) + 2)
    state = ckpt.ProcessState(1, step, True, settings, {}, {}, {}, {})
    place = ckpt.Place(rank, (0, 1, 2), lead)
    ckpt.save_set(exp, SimCommunicator(1), place, state, ckpt.ModelFile({}, {}, 4, 1, step), keep_last=3)


def _disagree(rank: int, world_size: int, root: Path, cuts: Path) -> tuple[str, float, int]:
    comm = DistCommunicator()
    cfg = load_config(TrainConfig, None, TRAIN)
    model_cfg = load_config(ModelConfig, None, [m[len("model."):] for m in MODEL])
    start = time.monotonic()
    try:
        fit(cfg, model_cfg, NoSyncConfig(), comm, root / f"rank{rank}", char_encode, len(ALPHABET) + 2,
            load_cuts(cuts, "synth", "train"), load_cuts(cuts, "synth", "dev"), resume=True)
        error = ""
    except UserError as e:
        error = str(e)
    seconds = time.monotonic() - start
    point = ckpt.find_resume_point(root / "shared", comm, ckpt.Place(rank, (0, 1, 2), rank == 0))
    return error.replace(f"rank{rank}", "rank?"), seconds, point.state.step


@pytest.mark.slow
def test_processes_that_disagree_on_the_resume_point_all_stop_with_the_same_error(corpus, tmp_path):
    for rank in range(3):  # each process sees another latest checkpoint: steps 4, 5, 6
        _craft(tmp_path / f"rank{rank}", rank, 4 + rank, lead=True)
        for step in (2, 4):  # one shared dir where rank 2's newest file is missing: all go back to step 2
            _craft(tmp_path / "shared", rank, step, lead=rank == 0)
    (tmp_path / "shared" / "strategy-step4-rank2.pt").unlink()
    results = run_processes(_disagree, 3, tmp_path, corpus / "cuts", timeout_s=60)
    errors = {error for error, _, _ in results}
    assert errors == {f"the processes see different latest checkpoints in {tmp_path / 'rank?'} (global steps 4 "
                      "to 6): is the exp dir shared by all nodes, and of one run?"}
    assert max(seconds for _, seconds, _ in results) < 45  # none waited out the 60 s collective timeout
    assert [step for _, _, step in results] == [2, 2, 2]
