"""The modelled speed-ups of the paper's setting (conf/cost_model.yaml) keep the paper's ordering."""

from pathlib import Path

import pytest

from asr_trainer.config import load_config
from asr_trainer.report.cost_model import Scenario, speedup

CONF = Path(__file__).resolve().parents[1] / "conf" / "cost_model.yaml"
STRATS = ("gtc", "bmuf", "hybrid")


@pytest.fixture(scope="module")
def table():
    sc = load_config(Scenario, CONF)
    topo, w = sc.topology(), sc.workload
    return {n: {s: speedup(s, n, w, topo) for s in STRATS} for n in (32, 64, 128)}


def test_gtc_slowest_at_128(table):
    row = table[128]
    assert row["gtc"] < min(row["bmuf"], row["hybrid"])
    # and GTC's efficiency falls with N (all-gather grows with N); BMUF's barely moves
    eff = {n: table[n]["gtc"] / n for n in table}
    assert eff[128] < eff[64] < eff[32]


def test_bmuf_fastest_at_64(table):
    row = table[64]
    assert row["bmuf"] == max(row.values())


def test_hybrid_at_128_needs_a_convergence_term(table):
    """Paper: hybrid 97x > BMUF 80x at 128. A per-step model cannot show it: per step BMUF
    does strictly less work than the hybrid (no GTC inside groups). The gap is small, so a
    small convergence penalty for 128-worker BMUF (the paper's BMUF WER at 128 is +9.6% vs
    +4.7% for the hybrid) reverses the order; the break-even epochs ratio is reported."""
    sc = load_config(Scenario, CONF)
    topo, w = sc.topology(), sc.workload
    pure = table[128]
    assert pure["bmuf"] >= pure["hybrid"]
    break_even = pure["bmuf"] / pure["hybrid"]
    assert 1.0 <= break_even < 1.05  # BMUF would need < 5% more epochs to lose
    penalised = speedup("bmuf", 128, w, topo, epochs_ratio=1.05)
    assert penalised < pure["hybrid"] and pure["hybrid"] > pure["gtc"]
