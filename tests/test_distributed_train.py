"""The trainer under every sync strategy: simulated cluster == real gloo processes, torchrun, CLI.

Tiny tone corpus (asr_trainer/testing/tones.py) and a ~23k-parameter TDNN-LSTM.
SpecAugment and dropout stay ON: each worker draws from its own seeded RNG in both paths.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr_trainer import checkpoint as ckpt
from asr_trainer.bin.main import main as cli
from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.report.wer import compute_wer, read_recogs
from asr_trainer.sync import DistCommunicator, SimCommunicator, load_sync_config, run_processes
from asr_trainer.testing.ports import free_port
from asr_trainer.train.config import TrainConfig
from asr_trainer.data.cuts import load_cuts
from asr_trainer.train.trainer import fit
from asr_trainer.testing.tones import ALPHABET, char_encode, write_tone_corpus

ROOT = Path(__file__).resolve().parents[1]
WORLD = 4
MODEL = ["kind=tdnn_lstm", "tdnn_lstm.conv_dim=32", "tdnn_lstm.lstm_dim=32", "tdnn_lstm.num_lstm_layers=1",
         "tdnn_lstm.dropout=0.1"]
TRAIN = ["data.max_duration=1.5", "optim.lr=0.01", "optim.warmup_steps=5", "progress_bar=false", "log_every=2",
         "num_epochs=2", "num_threads=1",
         "batched_dense=false"]  # the per-worker path: each worker's dropout from its own RNG, as in the real run
CASES = {  # every strategy; blocks end mid-epoch so the epoch-end block close is exercised
    "none": ("none", []),
    "allreduce": ("allreduce", []),
    "gtc": ("gtc", ["tau=0.01"]),
    "bmuf": ("bmuf", ["block_size=3", "warmup_steps=2"]),
    "hybrid": ("hybrid", ["group_size=2", "gtc.tau=0.01", "bmuf.block_size=4"]),
}
# Dense sums over 4 workers (allreduce gradients, BMUF's model mean) round differently in gloo's ring than in
# the simulation's rank-order sum; this CTC model amplifies 1e-8 differences about 10x per step (measured). So
# the real runs use DistCommunicator(exact_order=True) (`--exact-reduction`): gather, then sum in rank order,
# as the simulation does. Every strategy is compared on 4 processes; the 2-process case checks the default
# ring all-reduce, where a + b == b + a exactly.
WORLDS = {"none": 4, "gtc": 4, "hybrid": 4, "allreduce": 4, "bmuf": 4}
RING_WORLD = 2  # allreduce and bmuf again, with gloo's own ring all-reduce
NUM_OUTPUTS = len(ALPHABET) + 2
# Adam divides by sqrt(v) + 1e-8: a gradient element that is 1e-12 in one run and 0 in the other moves by +-lr.
# gloo sums in another order than the simulation, so the equality test uses SGD (the toy tests do too).
SGD = ["optim.name=sgd", "optim.lr=0.05", "optim.momentum=0.9"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``cuts/`` (train 56, dev 4, test 4 tone utterances) and a character ``lang/`` for decoding."""
    return write_tone_corpus(tmp_path_factory.mktemp("dist"), {"train": 56, "dev": 4, "test": 4})


def _configs(world: int):
    cases = ("allreduce", "bmuf") if world == RING_WORLD else [c for c in CASES if WORLDS[c] == world]
    return {case: load_sync_config(ROOT / f"conf/sync/{CASES[case][0]}.yaml", CASES[case][1]) for case in cases}


def _train(cuts_dir: Path, exp_dir: Path, sync_cfg, comm, extra=()) -> dict:
    cfg = load_config(TrainConfig, None, TRAIN + list(extra))
    model_cfg = load_config(ModelConfig, None, MODEL)
    train, dev = load_cuts(cuts_dir, "synth", "train"), load_cuts(cuts_dir, "synth", "dev")
    return fit(cfg, model_cfg, sync_cfg, comm, exp_dir, char_encode, NUM_OUTPUTS, train, dev)


def _real_worker(rank: int, world_size: int, cuts_dir: Path, root: Path, configs: dict) -> dict:
    comm = DistCommunicator(exact_order=world_size != RING_WORLD)
    return {case: _train(cuts_dir, root / f"real-{case}", cfg, comm, SGD) for case, cfg in configs.items()}


def _models_by_rank(state: dict) -> dict[int, dict]:
    """Model state of every worker in a strategy-state file (workers of a group share one)."""
    return {w: g["replica"]["model"] for g in state["groups"] for w in g["members"]}


def _assert_close(a: dict, b: dict, what) -> None:
    for key in a:
        if a[key].is_floating_point():
            assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), (what, key)


@pytest.mark.slow
@pytest.mark.parametrize("world", [4, 2])
def test_simulated_cluster_equals_real_gloo_processes(corpus, tmp_path, world):
    configs = _configs(world)
    real = run_processes(_real_worker, world, corpus / "cuts", tmp_path, configs)
    threads = torch.get_num_threads()
    try:
        sim = {case: _train(corpus / "cuts", tmp_path / f"sim-{case}", cfg, SimCommunicator(world), SGD)
               for case, cfg in configs.items()}
    finally:
        torch.set_num_threads(threads)
    load = lambda p: ckpt.load(p, ckpt.ProcessState).strategy  # noqa: E731
    model = lambda p: ckpt.load(p, ckpt.ModelFile).model  # noqa: E731
    for case in configs:
        steps = sum(r["steps"] for r in sim[case]["epochs"])
        assert steps >= 16 and steps == sum(r["steps"] for r in real[0][case]["epochs"]), case
        sim_models = _models_by_rank(load(tmp_path / f"sim-{case}" / "strategy-2.pt"))
        assert sorted(sim_models) == list(range(world))
        for rank in range(world):
            real_models = _models_by_rank(load(tmp_path / f"real-{case}" / f"strategy-2-rank{rank}.pt"))
            _assert_close(sim_models[rank], real_models[rank], (case, rank))
        sim_ckpt = model(tmp_path / f"sim-{case}" / "epoch-2.pt")
        _assert_close(sim_ckpt, model(tmp_path / f"real-{case}" / "epoch-2.pt"), (case, "ckpt"))
        s, r = (json.loads((tmp_path / f"{k}-{case}" / "sync_stats.json").read_text()) for k in ("sim", "real"))
        if world == RING_WORLD:  # exact_order sends (N-1)x the tensor, more than the ring the simulation counts
            assert r["bytes_sent_per_worker_per_step"] == pytest.approx(s["bytes_sent_per_worker_per_step"], rel=1e-9)
        assert (r["hosted_workers"], s["hosted_workers"], s["workers"]) == (1, world, world)
        assert s["params"] == sum(v.numel() for k, v in sim_ckpt.items() if "running" not in k and "tracked" not in k)
        if case in ("bmuf", "hybrid"):
            bmuf_cfg = configs[case] if case == "bmuf" else configs[case].bmuf
            assert s["block_size"] == bmuf_cfg.block_size
    if world == 2:  # the strategies really differ: BMUF replicas trained apart between syncs
        a, b = (model(tmp_path / f"sim-{c}" / "epoch-2.pt")["output.weight"]
                for c in ("allreduce", "bmuf"))
        assert not torch.allclose(a, b, rtol=1e-3)


def _train_args(corpus: Path, exp_dir: Path, options=(), overrides=()) -> list[str]:
    """``asr-trainer train`` arguments: options first, then the key=value overrides."""
    return (["train", "--exp-dir", str(exp_dir), "--lang-dir", str(corpus / "lang"), "--cuts-dir",
             str(corpus / "cuts"), "--config", str(ROOT / "conf/train.yaml"), *options]
            + TRAIN + [f"model.{m}" for m in MODEL] + list(overrides))


def _two_launchers(corpus: Path, exp: Path) -> tuple[list[int], list[str]]:
    """Two torchrun launchers (one process each) meeting at a c10d rendezvous on 127.0.0.1."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
         "-m", "asr_trainer.bin.main"] + _train_args(corpus, exp, ["--sync", "gtc"], ["sync.tau=0.01", "num_epochs=1"]),
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for node in (0, 1)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    return [p.returncode for p in procs], outs


@pytest.mark.slow
def test_two_node_torchrun_on_localhost(corpus, tmp_path):
    exp = tmp_path / "exp"
    codes, outs = _two_launchers(corpus, exp)
    if codes != [0, 0] and any("address already in use" in out.lower() for out in outs):
        codes, outs = _two_launchers(corpus, exp)  # the probed port was taken before the rendezvous bound it
    assert codes == [0, 0], outs
    assert (exp / "epoch-1.pt").is_file()
    stats = json.loads((exp / "sync_stats.json").read_text())
    assert (stats["strategy"], stats["workers"], stats["hosted_workers"]) == ("gtc", 2, 1)
    assert stats["steps"] > 0 and stats["payload_bytes_per_worker_per_step"] > 0
    assert {p.name for p in exp.glob("strategy-1-rank*.pt")} == {"strategy-1-rank0.pt", "strategy-1-rank1.pt"}


@pytest.mark.parametrize("sync, workers, overrides, message", [
    ("hybrid", "3", ["sync.group_size=2"], "group_size=2 must divide"),
    ("gtc", "2", ["sync.tau=0"], "tau must be > 0"),
    ("bmuf", "2", ["sync.block_momentum=1.0"], "block_momentum must be in"),
    ("sgd", "2", [], "sync name must be one of"),
    ("gtc", "0", [], "--simulate-workers must be >= 1"),
])
def test_misconfiguration_fails_before_training(corpus, tmp_path, capsys, sync, workers, overrides, message):
    options = ["--sync", sync, "--simulate-workers", workers]
    assert cli(_train_args(corpus, tmp_path / "exp", options, overrides)) == 2
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "exp").glob("*.pt"))


def test_simulate_workers_under_torchrun_is_refused(corpus, tmp_path, capsys, monkeypatch):
    for key, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    assert cli(_train_args(corpus, tmp_path / "exp", ["--sync", "gtc", "--simulate-workers", "2"])) == 2
    assert "--simulate-workers cannot be combined with torchrun" in capsys.readouterr().err


def test_nan_loss_on_one_worker_gives_zero_gradient_and_is_counted(corpus, tmp_path, monkeypatch):
    import asr_trainer.train.trainer as fs

    real_fb = fs.forward_backward
    calls = {"n": 0}

    def flaky(model, batch, device, bf16):  # the very first batch of the run is poisoned
        calls["n"] += 1
        if calls["n"] == 1:
            batch = {**batch, "features": batch["features"] * float("nan")}
        return real_fb(model, batch, device, bf16)

    monkeypatch.setattr(fs, "forward_backward", flaky)
    cfg = load_sync_config(ROOT / "conf/sync/gtc.yaml", ["tau=0.01"])
    with pytest.raises(UserError, match="max_skip_fraction"):
        _train(corpus / "cuts", tmp_path / "strict", cfg, SimCommunicator(WORLD))
    calls["n"] = 0
    train_cfg = load_config(TrainConfig, None, TRAIN + ["max_skip_fraction=0.5", "num_epochs=1"])
    model_cfg = load_config(ModelConfig, None, MODEL)
    cuts = corpus / "cuts"
    summary = fit(train_cfg, model_cfg, cfg, SimCommunicator(WORLD), tmp_path / "lenient", char_encode,
                       NUM_OUTPUTS, load_cuts(cuts, "synth", "train"), load_cuts(cuts, "synth", "dev"))
    assert summary["epochs"][0]["skipped"] == 1
    model = ckpt.load(tmp_path / "lenient" / "epoch-1.pt", ckpt.ModelFile).model
    assert all(torch.isfinite(v).all() for v in model.values() if v.is_floating_point())


@pytest.mark.slow
def test_cli_gtc_simulated_cluster_then_greedy_decode(corpus, tmp_path):
    exp = tmp_path / "exp"
    assert cli(_train_args(corpus, exp, ["--sync", "gtc", "--simulate-workers", "4"], ["sync.tau=0.01"])) == 0
    stats = json.loads((exp / "sync_stats.json").read_text())
    assert (stats["strategy"], stats["workers"], stats["hosted_workers"]) == ("gtc", 4, 4)
    assert 0 < stats["gtc_density"] < 1
    summary = json.loads((exp / "train-summary.json").read_text())
    assert [r["epoch"] for r in summary["epochs"]] == [1, 2] and (exp / "strategy-2.pt").is_file()
    assert any((exp / "tensorboard").iterdir())
    assert cli(["decode", "--exp-dir", str(exp), "--lang-dir", str(corpus / "lang"), "--cuts-dir",
                str(corpus / "cuts"), "--method", "greedy", "avg=2", "num_threads=1"]) == 0
    recogs = read_recogs(exp / "recogs-test-greedy.txt")
    test_cuts = load_cuts(corpus / "cuts", "synth", "test")
    assert sorted(cut_id for cut_id, _, _ in recogs) == sorted(test_cuts.ids)  # every test utterance, once
    assert all(ref for _, ref, _ in recogs)  # each with its reference (a 2-epoch model may still emit nothing)
    wer = json.loads((exp / "wer-test-greedy.json").read_text())
    assert wer["ref_words"] == sum(len(ref) for _, ref, _ in recogs)
    assert wer["wer"] == pytest.approx(compute_wer(recogs, replications=0).wer)  # the score is of these recogs
    # an existing run is never overwritten: without --resume it is refused
    assert cli(_train_args(corpus, exp, ["--sync", "gtc", "--simulate-workers", "4"])) == 2
