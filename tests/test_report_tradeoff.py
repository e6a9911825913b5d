"""`asr-trainer report` on a fixture of experiment directories written with the real writers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import kaldialign
import numpy as np
import pytest
import torch

from asr_trainer import checkpoint as ckpt
from asr_trainer.bin.main import main
from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.report import collect
from asr_trainer.report.bootstrap import relative_increase_ci
from asr_trainer.report.collect import ReportConfig, collect_rows
from asr_trainer.report.cost_model import Scenario, Workload, speedup
from asr_trainer.report.gpu_compute import GpuCompute
from asr_trainer.report.plots import write_plots
from asr_trainer.report.tables import CSV_COLUMNS, PAPER_RESULTS, format_table, write_tables
from asr_trainer.report.wer import compute_wer, score_set
from asr_trainer.sync.stats import StepStats, SyncSummary
from asr_trainer.train.epoch import EpochResult
from asr_trainer.train.step import BatchStats
from asr_trainer.train.trainer import SUMMARY, epoch_row

CONF = Path(__file__).resolve().parents[1] / "conf" / "cost_model.yaml"
CFG = ReportConfig(set_name="test", method="hlg", n_resamples=200, seed=3)
VOCAB = [f"W{i}" for i in range(40)]
PARAMS = 5000
# name: (strategy, workers, group_size, word error probability, GTC density)
SYSTEMS = {
    "allreduce-n2": ("allreduce", 2, 1, 0.12, None),
    "gtc-n4": ("gtc", 4, 4, 0.15, 0.01),
    "bmuf-n4": ("bmuf", 4, 1, 0.22, None),
    "hybrid-n8-g2": ("hybrid", 8, 2, 0.18, 0.02),
    "gtc-n2": ("gtc", 2, 2, 0.15, 0.01),  # same N as allreduce-n2: compared with it too
}


def make_utts(p_err: float, seed: int, n_utts: int = 60) -> list[tuple[str, list[str], list[str]]]:
    """Fixed references (same for every system); each word of the hypothesis wrong with ``p_err``."""
    ref_rng, rng = np.random.default_rng(0), np.random.default_rng(seed)
    utts = []
    for i in range(n_utts):
        ref = [VOCAB[j] for j in ref_rng.integers(0, len(VOCAB), size=int(ref_rng.integers(3, 12)))]
        hyp = [w if rng.random() > p_err else VOCAB[int(rng.integers(len(VOCAB)))] + "X" for w in ref]
        if rng.random() < p_err:
            hyp = hyp[:-1]
        utts.append((f"cut-{i:03d}", ref, hyp))
    return utts


def write_stats(exp_dir: Path, strategy: str, workers: int, group: int, density: float | None,
                compute_per_worker: float = 0.01) -> None:
    """``sync_stats.json`` through the sync code's own writer, plus an epoch checkpoint for the size."""
    summary = SyncSummary(strategy, workers, group)
    for step in range(3):
        summary.add(StepStats(step=step, bytes_sent=1000.0 * workers, bytes_received=900.0 * workers,
                              payload_bytes=4.0 * (density or 1) * PARAMS, density=density,
                              compute_s=compute_per_worker * workers, encode_decode_s=0.001 * workers if density else 0.0,
                              communicate_s=0.002, block_sync=False))
    summary.dump(exp_dir / "sync_stats.json")
    ckpt.save(exp_dir / "epoch-1.pt", ckpt.ModelFile(model={
        "w": torch.zeros(PARAMS - 8), "b": torch.zeros(8), "bn.running_mean": torch.zeros(99),
        "bn.num_batches_tracked": torch.tensor(3)}, model_config={}, num_outputs=8, epoch=1, step=3))


def write_training(exp_dir: Path, steps: list[int], losses: list[float]) -> None:
    """``train-summary.json`` with the trainer's own epoch rows: ``steps`` and dev ``losses`` per epoch."""
    rows = [epoch_row(e + 1, EpochResult(BatchStats(2.0, 10, 40, 1), s, 0, 1.0), BatchStats(loss * 10, 10, 40, 1))
            for e, (s, loss) in enumerate(zip(steps, losses))]
    (exp_dir / SUMMARY).write_text(json.dumps({"sync": "x", "workers": 1, "epochs": rows}))


@pytest.fixture
def exp_root(tmp_path: Path) -> Path:
    root = tmp_path / "exp"
    (root / "lang").mkdir(parents=True)  # not an experiment: skipped
    base = root / "baseline"
    base.mkdir()
    score_set(base, "test-hlg", make_utts(0.1, seed=1), {}, replications=0)
    write_training(base, [40, 41, 40], [1.5, 1.0, 0.75])
    for k, (name, (strategy, n, g, p_err, density)) in enumerate(SYSTEMS.items()):
        d = root / name
        d.mkdir()
        score_set(d, "test-hlg", make_utts(p_err, seed=10 + k), {}, replications=0)
        write_stats(d, strategy, n, g, density)
        if name != "bmuf-n4":  # a run without train-summary.json: no updates or dev loss reported
            write_training(d, [40 // n] * 3, [2.0, 1.5 + k, 1.25 + k])
    return root


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_config(Scenario, CONF)


def per_utt_errors(utts) -> dict[str, tuple[int, int]]:
    return {c: (kaldialign.edit_distance(r, h)["total"], len(r)) for c, r, h in utts}


def test_rows_wer_and_paired_ci(exp_root, scenario):
    rows = collect_rows(exp_root, "baseline", CFG, scenario)
    assert [r.name for r in rows] == ["baseline", "allreduce-n2", "gtc-n2", "gtc-n4", "bmuf-n4",
                                         "hybrid-n8-g2"]
    base_utts = make_utts(0.1, seed=1)
    assert rows[0].is_baseline and rows[0].strategy == "none" and rows[0].workers == 1
    assert (rows[0].rel.estimate, rows[0].rel.low, rows[0].rel.high, rows[0].modeled_speedup) == (0, 0, 0, 1)
    assert rows[0].test_wer == pytest.approx(compute_wer(base_utts, replications=0).wer)
    base = per_utt_errors(base_utts)
    ids = sorted(base)
    for k, (name, (strategy, n, g, p_err, _)) in enumerate(SYSTEMS.items()):
        row = next(r for r in rows if r.name == name)
        utts = make_utts(p_err, seed=10 + k)
        assert (row.strategy, row.workers, row.group_size) == (strategy, n, g)
        assert row.test_wer == pytest.approx(compute_wer(utts, replications=0).wer)
        sys_errs = per_utt_errors(utts)
        want = relative_increase_ci(np.array([sys_errs[c][0] for c in ids]), np.array([base[c][0] for c in ids]),
                                    np.array([base[c][1] for c in ids]), n_resamples=200, seed=3)
        assert (row.rel.estimate, row.rel.low, row.rel.high) == pytest.approx((want.estimate, want.low, want.high))
        assert row.rel.low <= row.rel.estimate <= row.rel.high
        assert row.bytes_per_step == pytest.approx(1000.0 * n)


def test_paired_ci_against_the_dense_run_of_the_same_workers(exp_root, scenario):
    rows = {r.name: r for r in collect_rows(exp_root, "baseline", CFG, scenario)}
    dense, gtc = per_utt_errors(make_utts(0.12, seed=10)), per_utt_errors(make_utts(0.15, seed=14))
    ids = sorted(dense)
    want = relative_increase_ci(np.array([gtc[c][0] for c in ids]), np.array([dense[c][0] for c in ids]),
                                np.array([dense[c][1] for c in ids]), n_resamples=200, seed=3)
    got = rows["gtc-n2"].vs_dense
    assert (got.estimate, got.low, got.high) == pytest.approx((want.estimate, want.low, want.high))
    # no all-reduce run at 4 or 8 workers; the dense run and the baseline are not compared with themselves
    assert all(rows[n].vs_dense is None for n in ("baseline", "allreduce-n2", "gtc-n4", "bmuf-n4", "hybrid-n8-g2"))


def test_updates_and_dev_loss_from_the_training_summary(exp_root, scenario, tmp_path):
    rows = {r.name: r for r in collect_rows(exp_root, "baseline", CFG, scenario)}
    assert rows["baseline"].training.points == ((40, 1.5), (81, 1.0), (121, 0.75))
    assert (rows["baseline"].training.updates, rows["baseline"].training.final_dev_loss) == (121, 0.75)
    k = list(SYSTEMS).index("gtc-n4")
    assert rows["gtc-n4"].training.points == ((10, 2.0), (20, 1.5 + k), (30, 1.25 + k))
    assert (rows["bmuf-n4"].training.updates, rows["bmuf-n4"].training.final_dev_loss) == (0, None)
    plots = write_plots(list(rows.values()), tmp_path / "r")
    md, csv_path = write_tables(tmp_path / "r", list(rows.values()), CFG, scenario, "x", plots)
    records = {r["name"]: r for r in csv.DictReader(open(csv_path, newline=""))}
    assert (records["baseline"]["updates"], records["baseline"]["final_dev_loss"]) == ("121", "0.75")
    assert (records["bmuf-n4"]["updates"], records["bmuf-n4"]["final_dev_loss"]) == ("0", "")
    assert "dev_loss_vs_updates.png" in md.read_text() and "| 121 | 0.750 |" in md.read_text()


def test_a_damaged_training_summary_is_a_clear_user_error(exp_root, scenario):
    (exp_root / "gtc-n4" / SUMMARY).write_text('{"epochs": [{"steps": 3}]}')
    with pytest.raises(UserError, match="gtc-n4/train-summary.json: not a train-summary.json"):
        collect_rows(exp_root, "baseline", CFG, scenario)


def test_pairing_is_by_cut_id_not_order():
    base = collect.utterance_errors(make_utts(0.1, seed=1))
    system = collect.utterance_errors(make_utts(0.3, seed=2))
    shuffled = dict(reversed(list(system.items())))
    a = collect.paired_arrays(base, system, "s")
    b = collect.paired_arrays(base, shuffled, "s")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[0].sum() == sum(u.errors for u in system.values())
    assert all(u.errors == u.ins + u.dels + u.subs for u in system.values())


def test_modelled_speedup_uses_the_gpu_and_the_measured_traffic(exp_root, scenario):
    """The GTC row's speed-up: the scenario GPU's compute and GTC round, the run's measured density and
    payload; the simulation's own (CPU) step times play no part."""
    rows = {r.name: r for r in collect_rows(exp_root, "baseline", CFG, scenario)}
    n, density, w, gpu = 4, 0.01, scenario.workload, scenario.gpu
    want = Workload(params=PARAMS, compute_s=gpu.step_floor_s, encode_s=gpu.gtc_floor_s,  # small model: floors
                    decode_s_per_element=w.decode_s_per_element, gtc_density=density, bytes_per_element=4.0,
                    pad_ratio=w.pad_ratio, bmuf_block=w.bmuf_block, bmuf_update_s=w.bmuf_update_s, hybrid_group=4,
                    padded_allgather=w.padded_allgather)
    assert rows["gtc-n4"].modeled_speedup == pytest.approx(speedup("gtc", n, want, scenario.topology()))
    for r in rows.values():
        assert 0 < r.modeled_speedup <= r.workers + 1e-9
    write_stats(exp_root / "gtc-n4", "gtc", 4, 4, 0.01, compute_per_worker=100.0)  # a slow simulation
    again = {r.name: r for r in collect_rows(exp_root, "baseline", CFG, scenario)}
    assert again["gtc-n4"].modeled_speedup == rows["gtc-n4"].modeled_speedup


def test_gpu_compute_on_hand_values(tmp_path):
    gpu = GpuCompute(step_floor_s=0.01, sustained_flops=1e12, gtc_floor_s=1e-3, gtc_bytes_per_s=1e9)
    assert gpu.compute_s(1000, 2.0) == 0.01  # 6 * 1e3 * 200 frames / 1e12 = 1.2e-6 s: launch-bound
    assert gpu.compute_s(10**7, 30.0) == pytest.approx(6 * 1e7 * 3000 / 1e12)  # 0.18 s: FLOP-bound
    assert gpu.gtc_round_s(1000) == 1e-3 and gpu.gtc_round_s(10**8) == pytest.approx(0.4)
    (tmp_path / "train.yaml").write_text("data:\n  max_duration: 12.5\n")
    assert collect.batch_seconds(tmp_path) == 12.5
    (tmp_path / "train.yaml").write_text("data: {}\n")
    with pytest.raises(UserError, match="no data.max_duration"):
        collect.batch_seconds(tmp_path)
    with pytest.raises(ValueError, match="step_floor_s"):
        GpuCompute(step_floor_s=0)


def test_params_counted_from_checkpoint(exp_root):
    assert collect.model_params(exp_root / "gtc-n4", {}) == PARAMS
    assert collect.model_params(exp_root / "gtc-n4", {"params": 7}) == 7


def test_tables_csv_and_plots(exp_root, scenario, tmp_path):
    rows = collect_rows(exp_root, "baseline", CFG, scenario)
    out = tmp_path / "report"
    plots = write_plots(rows, out)
    md, csv_path = write_tables(out, rows, CFG, scenario, "conf/cost_model.yaml", plots)
    for p in plots:
        data = (out / p).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        records = list(reader)
    required = {"name", "strategy", "workers", "group_size", "test_wer", "rel_wer_increase_pct", "ci95_low_pct",
                "ci95_high_pct", "bytes_per_step", "modeled_speedup"}
    assert required <= set(reader.fieldnames) and tuple(reader.fieldnames) == CSV_COLUMNS
    assert [r["name"] for r in records] == [r.name for r in rows]
    b = records[0]
    assert (float(b["rel_wer_increase_pct"]), float(b["ci95_low_pct"]), float(b["ci95_high_pct"]),
            float(b["modeled_speedup"])) == (0, 0, 0, 1)
    for rec, row in zip(records[1:], rows[1:]):
        assert float(rec["ci95_low_pct"]) == pytest.approx(row.rel.low, abs=1e-4)
        dense = rec["rel_vs_allreduce_pct"]
        assert (dense == "") == (row.vs_dense is None)
        assert dense == "" or float(dense) == pytest.approx(row.vs_dense.estimate, abs=1e-4)
        assert float(rec["modeled_speedup"]) == pytest.approx(row.modeled_speedup, abs=1e-4)
    text = md.read_text()
    assert "MEASURED" in text and "MODELLED" in text and "25gbe" in text and "paired" in text.lower()
    assert all(p in text for p in plots) and f"{PAPER_RESULTS['hybrid'][128].speedup:g}x" in text
    table = format_table(rows)
    assert all(r.name in table for r in rows) and "MODELLED" in table


def test_cli_writes_report_and_prints_table(exp_root, capsys):
    out = exp_root / "report"
    assert main(["report", "--exp-root", str(exp_root), "--baseline", "baseline", "--n-resamples", "50",
                 "--scenario", str(CONF), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gtc-n4" in printed and "speed-up" in printed
    assert (out / "report.md").is_file() and (out / "results.csv").is_file()
    import csv
    for rec in csv.DictReader(open(out / "results.csv", encoding="utf-8")):  # error kinds add up to the WER
        kinds = int(rec["ins"]) + int(rec["del"]) + int(rec["sub"])
        assert kinds > 0 and abs(100 * kinds / int(rec["ref_words"]) - float(rec["test_wer"])) < 1e-3, rec
    # a second run skips its own output directory (no recogs there)
    assert main(["report", "--exp-root", str(exp_root), "--baseline", "baseline", "--n-resamples", "50",
                 "--scenario", str(CONF)]) == 0


@pytest.mark.parametrize("damage, message", [
    ("no_baseline", "baseline experiment 'baseline' not found"),
    ("no_recogs", "no recogs-test-hlg.txt"),
    ("missing_utt", "missing from gtc-n4"),
    ("extra_utt", "utterances the baseline lacks"),
    ("no_model_size", "gtc-n4: cannot model its speed-up"),
])
def test_bad_input_is_a_clear_user_error(exp_root, scenario, damage, message):
    if damage == "no_baseline":
        (exp_root / "baseline" / "recogs-test-hlg.txt").unlink()
    elif damage == "no_recogs":
        (exp_root / "bmuf-n4" / "recogs-test-hlg.txt").unlink()
    elif damage == "no_model_size":
        (exp_root / "gtc-n4" / "epoch-1.pt").unlink()
    else:
        utts = make_utts(0.15, seed=11)
        utts = utts[1:] if damage == "missing_utt" else utts + [("cut-new", ["A"], ["A"])]
        score_set(exp_root / "gtc-n4", "test-hlg", utts, {}, replications=0)
    with pytest.raises(UserError, match=message):
        collect_rows(exp_root, "baseline", CFG, scenario)


def test_cli_reports_bad_input_without_traceback(exp_root, capsys):
    (exp_root / "bmuf-n4" / "recogs-test-hlg.txt").unlink()
    assert main(["report", "--exp-root", str(exp_root), "--baseline", "baseline", "--scenario", str(CONF)]) == 2
    err = capsys.readouterr().err
    assert "bmuf-n4" in err and "Traceback" not in err
