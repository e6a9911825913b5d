"""The seed spread of the report: families of runs that differ only in their seed, hand-computed."""

import pytest

from asr_trainer.report.bootstrap import Interval
from asr_trainer.report.collect import Row
from asr_trainer.report.spread import family, seed_spreads, spread_markdown
from asr_trainer.report.training import TrainingCurve


def _row(name: str, wer: float, dev_loss: float) -> Row:
    return Row(name=name, strategy="allreduce", workers=8, group_size=8, num_utts=10, ref_words=100,
               test_wer=wer, rel=Interval(0.0, 0.0, 0.0, 0.95, 0), bytes_per_step=1.0,
               bytes_received_per_step=1.0, gtc_density=None, time_split={}, modeled_speedup=1.0,
               training=TrainingCurve(((10, dev_loss),)))


def test_family_strips_only_a_seed_suffix():
    assert family("allreduce-w128-seed43") == "allreduce-w128"
    assert family("baseline-seed2") == "baseline"
    assert family("gtc-w64") == "gtc-w64"
    assert family("seed3-w8") == "seed3-w8"


def test_seed_spreads_group_families_of_two_or_more():
    rows = [_row("baseline", 50.0, 0.7), _row("allreduce-w8", 52.0, 0.8), _row("gtc-w8", 60.0, 0.9),
            _row("baseline-seed43", 54.0, 0.75), _row("baseline-seed44", 52.0, 0.72),
            _row("allreduce-w8-seed43", 51.0, 0.79)]
    base, dense = seed_spreads(rows)
    assert (base.family, base.names) == ("baseline", ("baseline", "baseline-seed43", "baseline-seed44"))
    assert base.mean == pytest.approx(52.0) and base.std == pytest.approx(2.0)  # 50, 54, 52
    assert base.range == pytest.approx(4.0) and base.relative_range == pytest.approx(100 * 4 / 52)
    assert dense.wers == (52.0, 51.0) and dense.dev_losses == (0.8, 0.79)
    table = spread_markdown([base, dense])
    assert "| baseline | 3 | 50.00, 54.00, 52.00 | 52.00 | 2.00 | 4.00 | 7.7% | 0.700, 0.750, 0.720 |" in table
    assert spread_markdown(seed_spreads(rows[:3])) == ""  # no family of two: no section
