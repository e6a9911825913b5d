"""PNG plots of the trade-off: relative WER increase and modelled speed-up against workers, and
every run's dev loss against its optimizer updates.

One line per strategy (hybrid: one per group size), ours solid with the bootstrap CI as
error bars, the paper's figures (:data:`asr_trainer.report.tables.PAPER_RESULTS`) dashed
in the same colour. Rendered with matplotlib's Agg canvas directly (no pyplot, no display,
no global backend switch).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from asr_trainer.report.collect import Row
from asr_trainer.report.tables import PAPER_RESULTS, PaperCell

PLOT_FILES = {"rel_wer": "rel_wer_vs_workers.png", "speedup": "speedup_vs_workers.png",
              "dev_loss": "dev_loss_vs_updates.png"}
COLORS = {"allreduce": "tab:gray", "gtc": "tab:blue", "bmuf": "tab:orange", "hybrid": "tab:green"}


def line_key(row: Row) -> str:
    """Legend label of the row's line: the strategy, with the group size for the hybrid."""
    return f"hybrid g={row.group_size}" if row.strategy == "hybrid" else row.strategy


def _lines(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Non-baseline rows grouped by :func:`line_key`, each sorted by workers."""
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if not r.is_baseline:
            out[line_key(r)].append(r)
    return {k: sorted(v, key=lambda r: r.workers) for k, v in out.items()}


def _paper_line(ax, strategy: str, value: Callable[[PaperCell], float | None]) -> None:
    cells = sorted(PAPER_RESULTS[strategy].items())
    pts = [(n, value(c)) for n, c in cells if value(c) is not None]
    if pts:
        ax.plot(*zip(*pts), "--", marker="s", color=COLORS.get(strategy), alpha=0.6, label=f"paper {strategy}")


def _figure(title: str, ylabel: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_xlabel("workers")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig, ax


def plot_rel_wer(rows: Sequence[Row], path: Path) -> Path:
    """Relative WER increase (percent, MEASURED, with CI) against workers; writes the PNG."""
    fig, ax = _figure("Relative WER increase vs the 1-worker baseline", "relative WER increase (%)")
    ax.axhline(0.0, color="black", lw=0.8)
    for key, line in _lines(rows).items():
        x = [r.workers for r in line]
        y = [r.rel.estimate for r in line]
        err = [[r.rel.estimate - r.rel.low for r in line], [r.rel.high - r.rel.estimate for r in line]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=COLORS.get(line[0].strategy), label=key)
    for strategy in PAPER_RESULTS:
        _paper_line(ax, strategy, lambda c: c.rel_wer_pct)
    return _save(fig, ax, path)


def plot_speedup(rows: Sequence[Row], path: Path) -> Path:
    """Speed-up (MODELLED) against workers, with linear scaling for reference; writes the PNG."""
    fig, ax = _figure("Speed-up vs one worker (modelled)", "speed-up (x)")
    ax.set_yscale("log", base=2)
    workers = sorted({r.workers for r in rows} | {n for c in PAPER_RESULTS.values() for n in c})
    ax.plot(workers, workers, ":", color="black", lw=0.8, label="linear")
    for key, line in _lines(rows).items():
        ax.plot([r.workers for r in line], [r.modeled_speedup for r in line], marker="o",
                color=COLORS.get(line[0].strategy), label=key)
    for strategy in PAPER_RESULTS:
        _paper_line(ax, strategy, lambda c: c.speedup)
    return _save(fig, ax, path)


def plot_dev_loss(rows: Sequence[Row], path: Path) -> Path:
    """Dev loss per output frame (MEASURED, after every epoch) against optimizer updates, one line per
    run (the baseline black); writes the PNG."""
    fig, ax = _figure("Dev loss against optimizer updates", "dev CTC loss per frame")
    ax.set_xlabel("optimizer updates")
    for r in rows:
        if r.training.points:
            x, y = zip(*r.training.points)
            color = "black" if r.is_baseline else COLORS.get(r.strategy)
            ax.plot(x, y, marker=".", color=color, alpha=1.0 if r.is_baseline else 0.7, label=r.name)
    return _save(fig, ax, path)


def _save(fig: Figure, ax, path: Path) -> Path:
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_plots(rows: Sequence[Row], out_dir: Path) -> list[str]:
    """The three plots into ``out_dir``; returns their file names (relative, for report.md)."""
    plot_rel_wer(rows, Path(out_dir) / PLOT_FILES["rel_wer"])
    plot_speedup(rows, Path(out_dir) / PLOT_FILES["speedup"])
    plot_dev_loss(rows, Path(out_dir) / PLOT_FILES["dev_loss"])
    return list(PLOT_FILES.values())
