"""The spread between training runs that differ only in their seed (``<name>`` and ``<name>-seed<S>``).

The paired bootstrap CI of a row covers the test set's sampling, not the noise of training itself:
two runs of one strategy with other seeds (model initialisation, shuffling, dropout, SpecAugment)
end at other WERs. A strategy's cost is real only beyond this spread. ``seed_spreads`` groups the
report's rows into families of seeds and summarises each family's test WER and dev loss.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Sequence

from asr_trainer.report.collect import Row

SEED_SUFFIX = re.compile(r"-seed\d+$")


@dataclass(frozen=True)
class SeedSpread:
    """Test WERs (percent) and final dev losses of the runs of one family, in row order."""

    family: str
    names: tuple[str, ...]
    wers: tuple[float, ...]
    dev_losses: tuple[float | None, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.wers)

    @property
    def std(self) -> float:
        """Sample standard deviation of the WERs (percent, absolute)."""
        return statistics.stdev(self.wers)

    @property
    def range(self) -> float:
        """Largest minus smallest WER (percent, absolute)."""
        return max(self.wers) - min(self.wers)

    @property
    def relative_range(self) -> float:
        """:attr:`range` relative to the mean WER, in percent: comparable with a relative WER increase."""
        return 100.0 * self.range / self.mean


def family(name: str) -> str:
    """``name`` without a ``-seed<S>`` suffix."""
    return SEED_SUFFIX.sub("", name)


def seed_spreads(rows: Sequence[Row]) -> list[SeedSpread]:
    """One :class:`SeedSpread` per family of two or more runs, in the order of its first row."""
    families: dict[str, list[Row]] = {}
    for row in rows:
        families.setdefault(family(row.name), []).append(row)
    return [SeedSpread(name, tuple(r.name for r in members), tuple(r.test_wer for r in members),
                       tuple(r.training.final_dev_loss for r in members))
            for name, members in families.items() if len(members) > 1]


def spread_markdown(spreads: Sequence[SeedSpread]) -> str:
    """The seed-spread table of ``report.md`` (empty when no family has two runs)."""
    if not spreads:
        return ""
    lines = ["## Spread between seeds\n",
             "Runs that differ only in their seed. A row's relative WER increase means something only "
             "beyond this spread (its CI covers the test set's sampling, not training noise).\n",
             "| runs | seeds | test WER % (each) | mean | std | range | range rel. to mean | dev loss (each) |",
             "|---|---|---|---|---|---|---|---|"]
    for s in spreads:
        wers = ", ".join(f"{w:.2f}" for w in s.wers)
        losses = ", ".join("-" if x is None else f"{x:.3f}" for x in s.dev_losses)
        lines.append(f"| {s.family} | {len(s.wers)} | {wers} | {s.mean:.2f} | {s.std:.2f} | {s.range:.2f} | "
                     f"{s.relative_range:.1f}% | {losses} |")
    return "\n".join(lines) + "\n"
