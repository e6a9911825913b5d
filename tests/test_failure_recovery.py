"""Surviving failures: a worker SIGKILLed under torchrun, a killed simulated run, a kill during a checkpoint write.

The worker failure is injected with the documented test hook
``ASR_TRAINER_FAULT_AFTER_STEPS=N`` (+ ``ASR_TRAINER_FAULT_RANK``): the process
hosting that rank does ``os.kill(os.getpid(), SIGKILL)`` right after step N, on
the first attempt only (``TORCHELASTIC_RESTART_COUNT`` 0). Nothing else is faked:
torchrun sees a dead worker, restarts both, and they resume from ``latest.json``.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from asr_trainer.bin.main import main as cli
from asr_trainer.report.wer import read_recogs
from asr_trainer.sync import SimCommunicator
from asr_trainer import checkpoint as ckpt
from asr_trainer.train import fault
from asr_trainer.testing.tones import write_tone_corpus

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["kind=tdnn_lstm", "tdnn_lstm.conv_dim=16", "tdnn_lstm.lstm_dim=16", "tdnn_lstm.num_lstm_layers=1",
         "tdnn_lstm.dropout=0.1"]
TRAIN = ["data.max_duration=1.5", "optim.lr=0.01", "optim.warmup_steps=3", "progress_bar=false", "log_every=2",
         "num_epochs=2", "num_threads=1", "checkpoint.every_steps=3", "checkpoint.keep_last=2"]
KILL_AFTER = 4  # one step after checkpoint-3.pt: step 4 is lost and redone


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``cuts/`` (train 24, dev 2, test 3 tone utterances) and a character ``lang/`` for decoding."""
    return write_tone_corpus(tmp_path_factory.mktemp("failure"), {"train": 24, "dev": 2, "test": 3})


def _train_args(corpus: Path, exp: Path, options=()) -> list[str]:
    return (["train", "--exp-dir", str(exp), "--lang-dir", str(corpus / "lang"), "--cuts-dir", str(corpus / "cuts"),
             "--config", str(ROOT / "conf/train.yaml"), *options] + TRAIN + [f"model.{m}" for m in MODEL])


def _env(**fault_vars) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASR_TRAINER_FAULT")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **fault_vars}


@pytest.mark.slow
def test_torchrun_worker_sigkill_restarts_resumes_and_decodes(corpus, tmp_path):
    exp = tmp_path / "exp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "1", "-m", "asr_trainer.bin.main",
           *_train_args(corpus, exp, ["--sync", "gtc"]), "sync.tau=0.01"]
    env = _env(**{fault.AFTER_STEPS_ENV: str(KILL_AFTER), fault.RANK_ENV: "1"})
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log1 = (exp / "log" / "log-train-rank1.txt").read_text()
    assert "fault injection: failing after step 4" in log1  # rank 1 really died once ...
    assert "resuming from checkpoint-3.pt" in log1  # ... and came back from the last complete checkpoint
    latest = json.loads((exp / ckpt.LATEST).read_text())
    assert latest["files"] == ["epoch-2.pt", "strategy-2-rank0.pt", "strategy-2-rank1.pt"]
    summary = json.loads((exp / "train-summary.json").read_text())
    assert [r["epoch"] for r in summary["epochs"]] == [1, 2]
    stats = json.loads((exp / "sync_stats.json").read_text())
    assert stats["steps"] == sum(r["steps"] for r in summary["epochs"])  # the whole run, across the restart
    assert cli(["decode", "--exp-dir", str(exp), "--lang-dir", str(corpus / "lang"), "--cuts-dir",
                str(corpus / "cuts"), "--method", "greedy", "avg=2", "num_threads=1", "bootstrap_replications=10"]) == 0
    test_ids = {json.loads(line)["id"] for line in _jsonl(corpus / "cuts" / "synth_cuts_test.jsonl.gz")}
    assert {u[0] for u in read_recogs(exp / "recogs-test-greedy.txt")} == test_ids
    assert json.loads((exp / "wer-test-greedy.json").read_text())["ref_words"] > 0


def _jsonl(path: Path) -> list[str]:
    import gzip

    return gzip.open(path, "rt").read().splitlines()


@pytest.mark.slow
def test_killed_simulated_cluster_resumes_with_flag(corpus, tmp_path):
    options = ["--sync", "bmuf", "--simulate-workers", "2"]
    bmuf = ["sync.block_size=2", "sync.warmup_steps=1"]
    cmd = [sys.executable, "-m", "asr_trainer.bin.main", *_train_args(corpus, tmp_path / "cut", options), *bmuf]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(**{fault.AFTER_STEPS_ENV: str(KILL_AFTER)}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (tmp_path / "cut" / "epoch-1.pt").exists()
    assert cli(_train_args(corpus, tmp_path / "cut", options + ["--resume"]) + bmuf) == 0
    assert cli(_train_args(corpus, tmp_path / "straight", options) + bmuf) == 0
    a, b = (ckpt.load(tmp_path / d / "epoch-2.pt", ckpt.ModelFile).model for d in ("cut", "straight"))
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


WRITER = textwrap.dedent("""
    import os, signal, sys, torch
    from asr_trainer import checkpoint as ckpt
    from asr_trainer.checkpoint import files
    from asr_trainer.sync import SimCommunicator
    exp = sys.argv[1]
    place = ckpt.Place(None, (None,), True)
    settings = ckpt.RunSettings({}, {}, 1, 4)
    def state(step, w):
        return ckpt.ProcessState(step, step, False, settings, {"w": w}, {}, {}, {})
    ckpt.save_set(exp, SimCommunicator(1), place, state(1, torch.ones(4)), ckpt.ModelFile({}, {}, 4, 1, 1), 3)
    def dying_save(obj, f):  # write the first part of a big checkpoint, then die like a killed process
        f.write(b"PK" + b"x" * 1_000_000)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    files.torch.save = dying_save
    ckpt.save_set(exp, SimCommunicator(1), place, state(2, torch.zeros(1 << 20)), ckpt.ModelFile({}, {}, 4, 2, 2), 3)
""")


def test_sigkill_during_checkpoint_write_keeps_previous_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT, env=_env(), timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = list(tmp_path.glob("*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 1_000_000  # it really died mid-write
    assert not (tmp_path / "strategy-2.pt").exists()
    point = ckpt.find_resume_point(tmp_path, SimCommunicator(1), ckpt.Place(None, (None,), True))
    assert point.pointer.files == ("epoch-1.pt", "strategy-1.pt") and torch.equal(point.state.strategy["w"], torch.ones(4))
    assert not list(tmp_path.glob("*.tmp"))  # the resume removed the partial file


def test_failed_write_cleans_up(tmp_path, monkeypatch):
    from asr_trainer.checkpoint import files

    ckpt.save_file(tmp_path / "checkpoint-3.pt", {"step": 3})

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(files.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_file(tmp_path / "checkpoint-6.pt", {"step": 6})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3.pt"]
