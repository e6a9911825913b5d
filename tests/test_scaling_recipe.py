"""The scaling-study recipe (recipes/scaling/): its plan, its per-strategy TensorBoard scalars, and
the quick variant end to end in a temporary copy of the recipe (never the user's data/ or exp/)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.sync import SimCommunicator, load_sync_config
from asr_trainer.train.config import TrainConfig
from asr_trainer.data.cuts import load_cuts
from asr_trainer.train.trainer import fit
from asr_trainer.testing.tones import ALPHABET, char_encode, make_tone_cuts

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "scaling" / "run.sh"
QUICK_TAG = "synth_quick"


def _local_module(name: str):
    """recipes/scaling/local/<name>.py as the module ``scaling_<name>`` (the recipe's scripts are no package)."""
    spec = importlib.util.spec_from_file_location(f"scaling_{name}", ROOT / f"recipes/scaling/local/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


plan = _local_module("plan")


# ---------------------------------------------------------------- the plan
def test_worker_batch_caps_the_batch_so_every_worker_gets_min_batches():
    # 8688 s of audio, 128 workers, >= 8 batches each: at most 8.4 s per batch
    corpus = plan.Corpus(total=8688.0, longest=5.7, count=3000)
    assert plan.worker_batch(60.0, corpus, 128, 8) == (8.4, 0)
    assert plan.worker_batch(60.0, corpus, 4, 8) == (60.0, 0)  # the cap does not bind
    # 100 s over 128 workers: a cap far below the longest cut gives one-utterance batches
    assert plan.worker_batch(60.0, plan.Corpus(100.0, 5.7, 40), 128, 8) == (5.7, 1)


def test_worker_batch_caps_the_batch_so_every_run_makes_min_updates():
    corpus = plan.Corpus(total=8688.0, longest=5.7, count=3000)
    # 8688 s x 15 epochs / (32 workers x 500 updates) = 8.145 s per batch, rounded down to 8.1
    assert plan.worker_batch(60.0, corpus, 32, 8, min_updates=500, epochs=15) == (8.1, 0)
    assert plan.worker_batch(60.0, corpus, 32, 8, min_updates=0, epochs=15) == (33.9, 0)  # min_batches only
    # 128 workers would need 2.04 s, under the longest cut: one utterance a batch (not the longest cut's seconds)
    assert plan.worker_batch(60.0, corpus, 128, 8, min_updates=500, epochs=15) == (5.7, 1)
    study = plan.Corpus(total=38301.0, longest=6.5, count=16722)  # the study profile, 4 epochs
    assert plan.worker_batch(60.0, study, 32, 8, min_updates=500, epochs=4) == (9.5, 0)  # 9.576 s
    assert plan.worker_batch(60.0, study, 64, 8, min_updates=500, epochs=4) == (6.5, 1)  # 4.79 s < 6.5 s
    assert plan.worker_batch(60.0, study, 128, 8, min_updates=500, epochs=4) == (6.5, 1)


def test_plan_rejects_group_sizes_that_do_not_divide_and_single_workers():
    with pytest.raises(UserError, match="does not divide worker counts \\[12\\]"):
        plan.check_workers([8, 12], 8)
    with pytest.raises(UserError, match=">= 2"):
        plan.check_workers([1, 8], 1)
    with pytest.raises(ValueError, match="min_batches"):
        plan.PlanConfig(min_batches=0)


@pytest.fixture(scope="module")
def tone_cuts(tmp_path_factory):
    d = tmp_path_factory.mktemp("scaling_tones")
    for split, n, seed in (("train", 32, 1), ("dev", 4, 2)):
        make_tone_cuts(d / split, n, seed=seed).to_file(d / f"synth_cuts_{split}.jsonl.gz")
    return d


def test_plan_counts_steps_scales_warmup_and_block(tone_cuts):
    cfg = load_config(TrainConfig, None, ["data.max_duration=4.0", "optim.warmup_steps=20", "num_epochs=3"])
    cuts = load_cuts(tone_cuts, "synth", "train")
    epochs, cells = plan.plan(cfg, cuts, [2, 4], plan.PlanConfig(min_batches=3, min_updates=0, bmuf_syncs=2,
                                                                 group_size=2), epochs=3)
    assert epochs == 3
    base_steps = plan.steps_per_epoch(cuts, cfg.data, 1, cfg.seed)
    total = sum(c.duration for c in cuts)
    for cell in cells:
        assert cell.max_duration <= max(4.0, max(c.duration for c in cuts))
        assert cell.max_duration <= total / (cell.workers * 3) + 0.1 or cell.max_duration == 4.0
        assert cell.steps >= 3  # every worker gets at least min_batches batches
        assert cell.warmup == max(1, round(20 * cell.steps / base_steps))
        assert cell.block == math.ceil(cell.steps / 2)
    assert cells[0].steps * 2 >= cells[1].steps  # more workers: no more steps per epoch


def test_plan_chooses_the_fewest_epochs_that_give_min_updates(tone_cuts, capsys):
    """32 cuts over 8 workers: one-utterance batches give 4 steps an epoch, so 20 updates need 5 epochs;
    at 2 workers the batch is capped so that 5 epochs also give >= 20 updates; 4 epochs would not do."""
    cfg = load_config(TrainConfig, None, ["data.max_duration=40.0"])
    cuts = load_cuts(tone_cuts, "synth", "train")
    epochs, cells = plan.plan(cfg, cuts, [2, 8], plan.PlanConfig(min_batches=1, min_updates=20, group_size=2))
    assert epochs == 5
    assert [c.steps * epochs >= 20 for c in cells] == [True, True]
    assert (cells[1].max_cuts, cells[1].steps) == (1, 4)
    _, fewer = plan.plan(cfg, cuts, [2, 8], plan.PlanConfig(min_batches=1, min_updates=20, group_size=2), epochs=4)
    assert fewer[1].steps * 4 < 20
    assert "make 16 updates < --min-updates 20" in capsys.readouterr().err


def test_plan_one_utterance_batches_at_any_worker_count(tone_cuts, capsys):
    cfg = load_config(TrainConfig, None, ["data.max_duration=40.0", "num_epochs=4"])
    cuts = load_cuts(tone_cuts, "synth", "train")
    _, few = plan.plan(cfg, cuts, [2], plan.PlanConfig(min_batches=1, min_updates=0, group_size=2), epochs=4)
    assert few[0].steps * 4 < 20  # without the cap: 40 s batches, few updates
    _, (cell,) = plan.plan(cfg, cuts, [2], plan.PlanConfig(min_batches=1, min_updates=20, group_size=2), epochs=4)
    assert cell.steps * 4 >= 20 and cell.max_duration < 40.0
    assert "WARNING" not in capsys.readouterr().err
    _, (cell,) = plan.plan(cfg, cuts, [2], plan.PlanConfig(min_batches=1, min_updates=10_000, group_size=2),
                           epochs=2)
    assert (cell.max_cuts, cell.steps) == (1, 16)  # 32 cuts, one a batch, over 2 workers
    assert cell.max_duration == math.ceil(10 * max(c.duration for c in cuts)) / 10
    assert "make 32 updates < --min-updates 10000" in capsys.readouterr().err


# ---------------------------------------------------------------- TensorBoard scalars per strategy
MODEL = ["kind=tdnn_lstm", "tdnn_lstm.conv_dim=16", "tdnn_lstm.lstm_dim=16", "tdnn_lstm.num_lstm_layers=1",
         "tdnn_lstm.num_conv_layers=2"]
TRAIN = ["data.max_duration=2.0", "optim.warmup_steps=2", "progress_bar=false", "log_every=1", "num_epochs=1",
         "num_threads=1"]
TB_CASES = {
    "gtc": ["tau=0.001"],
    "bmuf": ["block_size=2"],
    "hybrid": ["group_size=2", "gtc.tau=0.001", "bmuf.block_size=2"],
}
STEP_TAGS = ("train/sync/step/bytes_sent", "train/sync/step/bytes_received", "train/sync/bytes_sent_per_worker_per_step")
DENSITY_TAG = "train/sync/step/gtc_density"
NORM_TAG = "train/sync/block_momentum_norm"


def _scalars(exp_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(exp_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.parametrize("name", list(TB_CASES))
def test_tensorboard_has_per_step_sync_scalars(tone_cuts, tmp_path, name):
    import torch

    cfg = load_config(TrainConfig, None, TRAIN)
    sync_cfg = load_sync_config(ROOT / f"conf/sync/{name}.yaml", TB_CASES[name])
    threads = torch.get_num_threads()
    try:
        summary = fit(cfg, load_config(ModelConfig, None, MODEL), sync_cfg, SimCommunicator(4), tmp_path,
                           char_encode, len(ALPHABET) + 2, load_cuts(tone_cuts, "synth", "train"),
                           load_cuts(tone_cuts, "synth", "dev"))
    finally:
        torch.set_num_threads(threads)
    steps = sum(row["steps"] for row in summary["epochs"])
    scalars = _scalars(tmp_path)
    for tag in STEP_TAGS:
        assert len(scalars[tag]) == steps, (tag, sorted(scalars))  # one value per step (log_every=1)
        assert all(math.isfinite(v) and v >= 0 for v in scalars[tag]) and max(scalars[tag]) > 0, tag
    if name in ("gtc", "hybrid"):
        assert len(scalars[DENSITY_TAG]) == steps
        assert all(0 <= v <= 1 for v in scalars[DENSITY_TAG])
    else:
        assert DENSITY_TAG not in scalars
    if name in ("bmuf", "hybrid"):  # ||Delta|| exists from the first block sync on
        norms = scalars[NORM_TAG]  # Delta is zero until the first block sync
        assert norms and all(math.isfinite(v) and v >= 0 for v in norms) and max(norms) > 0, norms
        assert max(scalars["train/sync/step/block_sync"]) == 1.0
    else:
        assert NORM_TAG not in scalars
    if name == "bmuf":  # BMUF sends only at block syncs
        sent = [b > 0 for b in scalars["train/sync/step/bytes_sent"]]
        assert sent == [s == 1.0 for s in scalars["train/sync/step/block_sync"]]


# ---------------------------------------------------------------- the quick study end to end
@pytest.fixture
def recipe_copy(tmp_path) -> tuple[Path, dict]:
    """The recipe files in ``tmp_path`` with the repo's .venv linked (the package itself is the installed one),
    and the environment to run them in; skips where the repository has no .venv for the recipe to use."""
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the recipe bootstraps .venv; none at the repository root")
    for name in ("run.sh", "setup.cfg", "setup.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    for name in ("local", "conf", "recipes"):  # conf/data is the corpus settings: keep it
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "exp"))
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    # conf/ is copied whole: copying only what the test needed once hid a missing conf/data in this copy.
    return tmp_path, {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}


def _quick_recipe(work: Path, env: dict, data_root: Path, *args: str,
                  timeout: int = 300) -> subprocess.CompletedProcess:
    """``recipes/scaling/run.sh --profile quick`` with ``args`` in the recipe copy ``work``, on the quick corpus
    at ``data_root``; its output captured as text."""
    return subprocess.run(["bash", "recipes/scaling/run.sh", "--profile", "quick", "--tag", QUICK_TAG,
                           "--data-root", str(data_root), *args],
                          cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_quick_scaling_study_end_to_end(recipe_copy, tmp_path, quick_data_root):
    """The quick study in a copy of the recipe, on the session's quick corpus (its data stage finds it built)."""
    work, env = recipe_copy
    proc = _quick_recipe(work, env, quick_data_root,
                         "--train-opts", "data.max_train_cuts=96", "--lr-scaling", "sqrt",
                         "--bmuf-opts", "block_lr=0.9", "--seeds", "42 43", "--parallel-runs", "2", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = work / "exp" / QUICK_TAG / "scaling_quick"
    with open(study / "report" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    got = {(r["strategy"], int(r["workers"])) for r in rows}
    assert got == {("none", 1)} | {(s, n) for s in ("allreduce", "gtc", "bmuf", "hybrid") for n in (4, 8)}, got
    for r in rows:
        wer, low, rel, high = (float(r[k]) for k in ("test_wer", "ci95_low_pct", "rel_wer_increase_pct",
                                                     "ci95_high_pct"))
        assert all(math.isfinite(v) for v in (wer, low, rel, high)), r
        assert 0 < wer and low <= rel <= high, r
        if r["strategy"] in ("gtc", "bmuf", "hybrid"):  # paired against the dense run of the same N
            assert math.isfinite(float(r["rel_vs_allreduce_pct"])), r
        assert int(r["group_size"]) == {"none": 1, "allreduce": int(r["workers"]), "gtc": int(r["workers"]), "bmuf": 1, "hybrid": 2}[r["strategy"]]
        if r["strategy"] != "none":
            assert float(r["bytes_per_step"]) > 0, r
        epochs = json.loads((study / r["name"] / "train-summary.json").read_text())["epochs"]
        assert int(r["updates"]) == sum(e["steps"] for e in epochs) > 0, r
        assert float(r["final_dev_loss"]) == pytest.approx(epochs[-1]["valid_loss"], abs=1e-4), r
    run = yaml.safe_load((study / "hybrid-w8" / "train.yaml").read_text())
    assert (run["optim"]["lr_scaling"], run["optim"]["reference_batch"]) == ("sqrt", 40.0)  # the baseline's batch
    assert yaml.safe_load((study / "gtc-w4" / "train.yaml").read_text())["optim"]["lr_scaling"] == "linear"
    hybrid_sync = yaml.safe_load((study / "hybrid-w8" / "sync.yaml").read_text())
    assert (hybrid_sync["bmuf"]["block_lr"], hybrid_sync["bmuf"]["optimizer_state"]) == (0.9, "keep")
    bmuf_sync = yaml.safe_load((study / "bmuf-w8" / "sync.yaml").read_text())
    assert (bmuf_sync["block_lr"], bmuf_sync["optimizer_state"]) == (0.9, "reset")  # the study's measured default
    _check_scaled_lr(study)
    assert "per simulated run (mean of" in proc.stderr  # the measured time per run, extrapolated
    assert "estimate: 11 run(s) to train, 2 epochs each, 2 at once" in proc.stderr  # probed before training
    assert "probe, gtc at 8 workers: 3 steps of 8 worker(s), sync gtc:" in proc.stderr
    for name in ("baseline-seed43", "bmuf-w4"):  # --parallel-runs 2: two runs at once, a thread each
        assert yaml.safe_load((study / name / "train.yaml").read_text())["num_threads"] == 1, name
    assert not list(study.glob("*/strategy-*.pt"))  # resume-only state removed after each finished run
    assert (study / "plan.tsv").read_text().count("\n") == 2
    assert [line.split("\t")[6] for line in (study / "plan.tsv").read_text().splitlines()] == ["2", "2"]  # epochs
    names = {r["name"] for r in rows}  # the seed runs: the baseline, and dense all-reduce at the largest N
    assert {"baseline-seed43", "allreduce-w8-seed43"} <= names and "allreduce-w4-seed43" not in names
    for name in ("baseline", "baseline-seed43", "gtc-w8"):  # every run trains the plan's 2 epochs
        assert len(json.loads((study / name / "train-summary.json").read_text())["epochs"]) == 2, name
    assert yaml.safe_load((study / "baseline-seed43" / "train.yaml").read_text())["seed"] == 43
    for name in ("baseline", "gtc-w8"):  # the study's model: instance-norm conv blocks (no batch statistics)
        assert yaml.safe_load((study / name / "model.yaml").read_text())["tdnn_lstm"]["norm"] == "instance", name
    report = (study / "report" / "report.md").read_text()
    assert "## Spread between seeds" in report and "| allreduce-w8 | 2 |" in report and "| baseline | 2 |" in report
    _check_saved_records(study, tmp_path / "saved")
    _check_a_part_with_other_epochs_is_refused(work, env, quick_data_root)
    _check_a_part_runs_only_its_workers(work, env, quick_data_root)


def _check_scaled_lr(study: Path) -> None:
    """GTC at 8 workers (the gtc runs' own rule, linear, under ``--lr-scaling sqrt``): all 8 worker batches form
    one step; a one-utterance batch counts its utterance's audio."""
    plan_rows = [line.split("\t") for line in (study / "plan.tsv").read_text().splitlines()]
    cap, max_cuts = next((float(r[1]), int(r[2])) for r in plan_rows if r[0] == "8")
    log = (study / "log" / "stage3-train-gtc-w8.log").read_text()
    found = re.search(r"learning rate (\S+): linear scaling of 0.003 for ([\d.]+) s of audio per optimizer step "
                      r"against 40 s", log)
    assert found, log[-2000:]
    lr, step = float(found[1]), float(found[2])
    assert lr == pytest.approx(0.003 * step / 40.0, rel=0.01)
    if max_cuts:
        assert 0 < step < 8 * cap  # the utterances' audio, not the cap
    else:
        assert step == pytest.approx(8 * cap, abs=0.05)


def _check_a_part_with_other_epochs_is_refused(work: Path, env: dict, data_root: Path) -> None:
    """A later part must train the epochs of the study's baseline: other epochs stop before any training."""
    proc = _quick_recipe(work, env, data_root, "--workers", "4", "--epochs", "3")
    assert proc.returncode != 0
    assert "trained 2 epochs, this plan has 3" in proc.stderr and "pass --epochs 2" in proc.stderr, proc.stderr[-2000:]
    plan = work / "exp" / QUICK_TAG / "scaling_quick" / "plan.tsv"
    assert plan.read_text().count("\n") == 2  # the study's plan is kept: the refused part did not replace it


def _check_saved_records(study: Path, saved: Path) -> None:
    """local/save_results.py keeps each run's record without checkpoints, and the report over the saved records
    gives the study's own table (the results of one sitting carry over to the next)."""
    proc = subprocess.run([sys.executable, str(ROOT / "recipes/scaling/local/save_results.py"), "--study", str(study),
                           "--out", str(saved / "runs")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "11 run(s) saved" in proc.stdout and "lacks" not in proc.stdout, proc.stdout
    assert not list(saved.glob("runs/*/*.pt")) and (saved / "runs" / "plan.tsv").is_file()
    proc = subprocess.run([sys.executable, "-m", "asr_trainer.bin.main", "report", "--exp-root", str(saved / "runs"),
                           "--baseline", "baseline", "--set", "test", "--method", "hlg", "--out-dir", str(saved)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(study / "report" / "results.csv", newline="") as f, open(saved / "results.csv", newline="") as g:
        assert list(csv.DictReader(f)) == list(csv.DictReader(g))


def test_saved_study_files_merge_a_parts_rows_by_their_first_column(tmp_path):
    save_results = _local_module("save_results")
    saved, part = tmp_path / "plan-saved.tsv", tmp_path / "plan-part.tsv"
    saved.write_text("32\t9.5\t0\t151\n64\t6.5\t1\t262\n128\t6.5\t1\t130\n")
    part.write_text("128\t6.5\t1\t131\n256\t6.5\t1\t66\n")  # a part at 128 and 256 workers
    save_results.merge_rows(part, saved)
    assert saved.read_text() == "32\t9.5\t0\t151\n64\t6.5\t1\t262\n128\t6.5\t1\t131\n256\t6.5\t1\t66\n"
    save_results.merge_rows(part, tmp_path / "new.tsv")  # nothing saved yet: the part's rows
    assert (tmp_path / "new.tsv").read_text() == part.read_text()


@pytest.mark.slow
def test_a_failed_baseline_fails_the_recipe_with_the_trainers_message(recipe_copy, quick_data_root):
    """A bad model setting (which the plan does not read) fails the baseline and every strategy run, each with
    the trainer's message and none marked done; the recipe exits non-zero once the queue is through."""
    work, env = recipe_copy
    proc = _quick_recipe(work, env, quick_data_root,
                         "--seeds", "42", "--strategies", "allreduce gtc",
                         "--parallel-runs", "3", "--train-opts", "model.tdnn_lstm.lstm_dim=0")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    # the trainer's own message, once a run: the baseline and allreduce/gtc at 4 and 8 workers
    assert out.count("tdnn_lstm.lstm_dim must be positive") == 5, out[-3000:]
    study = work / "exp" / QUICK_TAG / "scaling_quick"
    assert not list(study.glob("*/.done")), out[-3000:]
    assert "stage 5" not in out, out[-3000:]  # no report of failed runs


def _check_a_part_runs_only_its_workers(work: Path, env: dict, data_root: Path) -> None:
    """A part without stage 1 keeps the study's plan (4 and 8 workers) but queues only its own --workers, and a
    part without stage 2 leaves the baseline alone."""
    study = work / "exp" / QUICK_TAG / "scaling_quick"
    (study / "allreduce-w8" / ".decoded-hlg").unlink()  # would be queued for decoding by a part at 8 workers
    proc = _quick_recipe(work, env, data_root,
                         "--workers", "4", "--strategies", "allreduce",
                         "--seeds", "42", "--stage", "4", "--stop-stage", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stages 2-4: 0 run(s) to train and/or decode" in proc.stderr, proc.stderr[-2000:]
    assert not (study / "allreduce-w8" / ".decoded-hlg").exists()
    # a part by --stage 3 where no baseline has started (a new machine): it leaves the baseline to the part
    # that trains it and trains its cell the plan's 2 epochs (the study's settings, not conf/train.yaml's 10)
    shutil.rmtree(study / "allreduce-w4")
    (study / "baseline").rename(study / "baseline-elsewhere")
    proc = _quick_recipe(work, env, data_root,
                         "--workers", "4", "--strategies", "allreduce",
                         "--seeds", "42", "--stage", "3", "--stop-stage", "4", "--probe", "false",
                         "--train-opts", "data.max_train_cuts=96", "--lr-scaling", "sqrt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "baseline is not trained and stage 2 is not selected" in proc.stderr, proc.stderr[-2000:]
    assert "stages 2-4: 1 run(s) to train and/or decode" in proc.stderr, proc.stderr[-2000:]
    assert not (study / "baseline").exists()  # not trained by this part
    summary = json.loads((study / "allreduce-w4" / "train-summary.json").read_text())
    assert len(summary["epochs"]) == 2 and (study / "allreduce-w4" / ".decoded-hlg").exists(), summary

