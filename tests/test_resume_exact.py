"""Exact resume: stop mid-epoch (and mid-BMUF-block), resume, finish == the uninterrupted run.

The stop is the fault hook (:mod:`asr_trainer.train.fault`, ``raise`` mode) firing
one step AFTER the last checkpoint, so the resumed run also redoes lost work.
SpecAugment and dropout stay on: the RNG streams must be restored at the same point.
"""

import json
from pathlib import Path

import pytest
import torch

from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer import checkpoint as ckpt
from asr_trainer.data.cuts import load_cuts
from asr_trainer.sync import DistCommunicator, NoSyncConfig, SimCommunicator, load_sync_config, run_processes
from asr_trainer.train import fault
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.trainer import fit
from asr_trainer.testing.tones import ALPHABET, char_encode, make_tone_cuts

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["kind=tdnn_lstm", "tdnn_lstm.conv_dim=16", "tdnn_lstm.lstm_dim=16", "tdnn_lstm.num_lstm_layers=1",
         "tdnn_lstm.dropout=0.1"]
EVERY = 5  # checkpoint-5.pt, checkpoint-10.pt, ...
STOP = 6  # the fault fires after step 6: resume from checkpoint-5.pt, mid-epoch 1 and (BMUF) mid-block
TRAIN = ["data.max_duration=1.5", "optim.lr=0.01", "optim.warmup_steps=3", "progress_bar=false", "log_every=2",
         "num_epochs=2", "num_threads=1", f"checkpoint.every_steps={EVERY}", "checkpoint.keep_last=1"]
SGD = ["optim.name=sgd", "optim.lr=0.05", "optim.momentum=0.9"]
NUM_OUTPUTS = len(ALPHABET) + 2
CASES = {  # name: (conf/sync file, overrides, simulated workers); BMUF blocks end at steps 4, 7 (epoch end?) ...
    "gtc": ("gtc", ["tau=0.01"], 2),
    "bmuf": ("bmuf", ["block_size=3", "warmup_steps=1"], 2),
    "hybrid": ("hybrid", ["group_size=2", "gtc.tau=0.01", "bmuf.block_size=3"], 4),
}
REAL = {  # 2 gloo processes: hybrid with groups of 1 (BMUF across 2 local-SGD groups)
    "gtc": ("gtc", ["tau=0.01"]),
    "bmuf": ("bmuf", ["block_size=3", "warmup_steps=1"]),
    "hybrid": ("hybrid", ["group_size=1", "bmuf.block_size=3"]),
}


@pytest.fixture(scope="module")
def cuts_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    make_tone_cuts(d / "train", 48, seed=1).to_file(d / "synth_cuts_train.jsonl.gz")
    make_tone_cuts(d / "dev", 2, seed=2).to_file(d / "synth_cuts_dev.jsonl.gz")
    return d


def _configs(extra=()):
    return load_config(TrainConfig, None, TRAIN + list(extra)), load_config(ModelConfig, None, MODEL)


def _model(path: Path) -> dict:
    return ckpt.load(path, ckpt.ModelFile).model


def _strategy(path: Path) -> dict:
    """The strategy section of a process's state file."""
    return ckpt.load(path, ckpt.ProcessState).strategy


def _assert_same(a: dict, b: dict, what) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].double(), b[key].double(), rtol=0, atol=1e-6), (what, key)


def _arm(monkeypatch, rank=None) -> None:
    monkeypatch.setenv(fault.AFTER_STEPS_ENV, str(STOP))
    monkeypatch.setenv(fault.MODE_ENV, "raise")
    if rank is not None:
        monkeypatch.setenv(fault.RANK_ENV, str(rank))


def _disarm(monkeypatch) -> None:
    for var in (fault.AFTER_STEPS_ENV, fault.MODE_ENV, fault.RANK_ENV):
        monkeypatch.delenv(var, raising=False)


def _sync(cuts: Path, exp: Path, case: str, comm, resume=False, extra=()) -> dict:
    cfg, model_cfg = _configs(extra)
    name, overrides, _ = CASES[case]
    sync_cfg = load_sync_config(ROOT / f"conf/sync/{name}.yaml", overrides)
    return fit(cfg, model_cfg, sync_cfg, comm, exp, char_encode, NUM_OUTPUTS,
                    load_cuts(cuts, "synth", "train"), load_cuts(cuts, "synth", "dev"), resume=resume)


@pytest.mark.slow
def test_baseline_resumes_mid_epoch_exactly(cuts_dir, tmp_path, monkeypatch):
    cfg, model_cfg = _configs()
    train, dev = load_cuts(cuts_dir, "synth", "train"), load_cuts(cuts_dir, "synth", "dev")

    def baseline(exp: Path) -> dict:  # what `asr-trainer train` runs without --sync: 1 worker, sync none, resume
        return fit(cfg, model_cfg, NoSyncConfig(), SimCommunicator(1), exp, char_encode, NUM_OUTPUTS, train, dev,
                   resume=True)

    straight = baseline(tmp_path / "straight")
    assert straight["epochs"][0]["steps"] > STOP  # the stop falls mid-epoch 1
    _arm(monkeypatch)
    with pytest.raises(fault.InjectedFault):
        baseline(tmp_path / "cut")
    _disarm(monkeypatch)
    assert ckpt.read_pointer(tmp_path / "cut").files == (f"checkpoint-{EVERY}.pt", f"strategy-step{EVERY}.pt")
    resumed = baseline(tmp_path / "cut")
    assert [r["epoch"] for r in resumed["epochs"]] == [1, 2]
    for a, b in zip(straight["epochs"], resumed["epochs"], strict=True):  # the summary covers the whole run
        assert (a["steps"], a["skipped"]) == (b["steps"], b["skipped"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6), a["epoch"]
    _assert_same(_model(tmp_path / "straight" / "epoch-2.pt"), _model(tmp_path / "cut" / "epoch-2.pt"), "baseline")
    a, b = (_strategy(tmp_path / d / "strategy-2.pt")["groups"][0]["replica"]["optimizer"]["state"]
            for d in ("straight", "cut"))
    assert all(torch.equal(a[k]["exp_avg_sq"], b[k]["exp_avg_sq"]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_simulated_cluster_resumes_mid_epoch_exactly(cuts_dir, tmp_path, monkeypatch, case):
    world = CASES[case][2]
    straight = _sync(cuts_dir, tmp_path / "straight", case, SimCommunicator(world))
    assert straight["epochs"][0]["steps"] > STOP
    _arm(monkeypatch)
    with pytest.raises(fault.InjectedFault):
        _sync(cuts_dir, tmp_path / "cut", case, SimCommunicator(world))
    _disarm(monkeypatch)
    with pytest.raises(UserError, match="--resume"):  # never silently overwritten
        _sync(cuts_dir, tmp_path / "cut", case, SimCommunicator(world))
    resumed = _sync(cuts_dir, tmp_path / "cut", case, SimCommunicator(world), resume=True)
    assert [r["steps"] for r in resumed["epochs"]] == [r["steps"] for r in straight["epochs"]]
    assert resumed["epochs"][0]["train_loss"] == pytest.approx(straight["epochs"][0]["train_loss"], rel=1e-6)
    _assert_same(_model(tmp_path / "straight" / "epoch-2.pt"), _model(tmp_path / "cut" / "epoch-2.pt"), case)
    s, r = (_strategy(tmp_path / d / "strategy-2.pt") for d in ("straight", "cut"))
    for gs, gr in zip(s["groups"], r["groups"], strict=True):
        _assert_same(gs["replica"]["model"], gr["replica"]["model"], (case, gs["ranks"]))
    for ranks, workers in s["intra"].get("groups", {}).items():
        for w, saved in workers.items():
            resumed_residual = r["intra"]["groups"][ranks][w]["residual"]
            assert torch.allclose(saved["residual"], resumed_residual, atol=1e-6), (case, "residual", w)
    if s["bmuf"] is not None:
        assert torch.allclose(s["bmuf"]["delta"], r["bmuf"]["delta"], atol=1e-6)


def _real(rank: int, world_size: int, cuts: Path, root: Path) -> dict:
    import os

    comm = DistCommunicator()
    out = {}
    for case, (name, overrides) in REAL.items():
        sync_cfg = load_sync_config(ROOT / f"conf/sync/{name}.yaml", overrides)
        cfg, model_cfg = _configs(SGD)
        args = (cfg, model_cfg, sync_cfg, comm)
        data = (char_encode, NUM_OUTPUTS, load_cuts(cuts, "synth", "train"), load_cuts(cuts, "synth", "dev"))
        straight = fit(*args, root / f"straight-{case}", *data)
        os.environ.update({fault.AFTER_STEPS_ENV: str(STOP), fault.MODE_ENV: "raise"})
        try:
            fit(*args, root / f"cut-{case}", *data)
            raise AssertionError("the fault did not fire")
        except fault.InjectedFault:
            pass
        finally:
            del os.environ[fault.AFTER_STEPS_ENV], os.environ[fault.MODE_ENV]
        resumed = fit(*args, root / f"cut-{case}", *data, resume=True)
        out[case] = (straight["epochs"][0]["steps"], [r["steps"] for r in resumed["epochs"]])
    return out


@pytest.mark.slow
def test_two_gloo_processes_resume_mid_epoch_exactly(cuts_dir, tmp_path):
    results = run_processes(_real, 2, cuts_dir, tmp_path)
    for case in REAL:
        first_epoch_steps, steps = results[0][case]
        assert first_epoch_steps > STOP and steps[0] == first_epoch_steps, case
        for rank in (0, 1):
            a, b = (_strategy(tmp_path / f"{k}-{case}" / f"strategy-2-rank{rank}.pt") for k in ("straight", "cut"))
            for ga, gb in zip(a["groups"], b["groups"], strict=True):
                _assert_same(ga["replica"]["model"], gb["replica"]["model"], (case, rank))
        _assert_same(_model(tmp_path / f"straight-{case}" / "epoch-2.pt"),
                     _model(tmp_path / f"cut-{case}" / "epoch-2.pt"), case)
        latest = json.loads((tmp_path / f"cut-{case}" / ckpt.LATEST).read_text())
        assert latest["files"] == ["epoch-2.pt", "strategy-2-rank0.pt", "strategy-2-rank1.pt"]
