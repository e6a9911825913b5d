"""The trade-off table: ``results.csv``, ``report.md`` and the terminal table, plus the paper's figures.

Input rows come from :func:`asr_trainer.report.collect.collect_rows`. Which number is
measured and which is modelled is stated in every output: WER, relative increase, bytes
and the step-time split are MEASURED; the speed-up is MODELLED (cost model on a scenario).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from asr_trainer.report.bootstrap import Interval
from asr_trainer.report.collect import ReportConfig, Row
from asr_trainer.report.cost_model import Scenario
from asr_trainer.report.spread import seed_spreads, spread_markdown


@dataclass(frozen=True)
class PaperCell:
    """One cell of the paper's table: speed-up vs one GPU, relative WER increase in percent.

    ``rel_wer_pct`` is None where the paper gives no number (``note`` says what it says).
    """

    speedup: float
    rel_wer_pct: float | None
    note: str = ""


# Amazon, "Two Tiered Distributed Training Algorithm for Acoustic Modeling" (Interspeech 2019),
# as quoted in DESIGN.md section 1. The one copy of these figures in the package.
PAPER_RESULTS: dict[str, dict[int, PaperCell]] = {
    "gtc": {32: PaperCell(26.0, 1.4), 64: PaperCell(17.0, 2.8), 128: PaperCell(11.0, 15.6)},
    "bmuf": {32: PaperCell(36.6, 3.5), 64: PaperCell(57.0, 8.9), 128: PaperCell(80.0, 9.6)},
    "hybrid": {32: PaperCell(31.0, None, "below baseline"), 64: PaperCell(42.0, 3.1),
               128: PaperCell(97.0, 4.7)},
}

CSV_COLUMNS = (
    "name", "strategy", "workers", "group_size", "num_utts", "ref_words", "test_wer",
    "rel_wer_increase_pct", "ci95_low_pct", "ci95_high_pct", "bytes_per_step", "bytes_received_per_step",
    "gtc_density", "compute_s", "encode_decode_s", "communicate_s", "modeled_speedup",
    "rel_vs_allreduce_pct", "vs_allreduce_ci95_low_pct", "vs_allreduce_ci95_high_pct", "ins", "del", "sub",
    "updates", "final_dev_loss",
)


def csv_record(row: Row) -> dict[str, object]:
    """One ``results.csv`` line; missing measurements are empty cells."""
    t = row.time_split
    return {
        "name": row.name, "strategy": row.strategy, "workers": row.workers, "group_size": row.group_size,
        "num_utts": row.num_utts, "ref_words": row.ref_words, "test_wer": round(row.test_wer, 4),
        "rel_wer_increase_pct": round(row.rel.estimate, 4), "ci95_low_pct": round(row.rel.low, 4),
        "ci95_high_pct": round(row.rel.high, 4), "bytes_per_step": row.bytes_per_step,
        "bytes_received_per_step": row.bytes_received_per_step,
        "gtc_density": "" if row.gtc_density is None else row.gtc_density,
        "compute_s": t.get("compute", ""), "encode_decode_s": t.get("encode_decode", ""),
        "communicate_s": t.get("communicate", ""), "modeled_speedup": round(row.modeled_speedup, 4),
        **_dense_record(row.vs_dense), **dict(zip(("ins", "del", "sub"), row.error_kinds)),
        "updates": row.training.updates,
        "final_dev_loss": "" if row.training.final_dev_loss is None else round(row.training.final_dev_loss, 4),
    }


def _dense_record(d: Interval | None) -> dict[str, object]:
    """The three ``results.csv`` cells of the comparison with dense all-reduce; empty when there is none."""
    values = ("", "", "") if d is None else (round(d.estimate, 4), round(d.low, 4), round(d.high, 4))
    return dict(zip(("rel_vs_allreduce_pct", "vs_allreduce_ci95_low_pct", "vs_allreduce_ci95_high_pct"), values))


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """``results.csv`` with :data:`CSV_COLUMNS`, one line per row."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_record(r) for r in rows)


def _bytes(n: float) -> str:
    """Human-readable bytes (``1.5 MB``); 0 for the baseline."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _ms(split: dict[str, float], key: str) -> str:
    return f"{split[key] * 1e3:.1f}" if key in split else "-"


def _cells(row: Row) -> list[str]:
    """Formatted cells of one row, in :data:`TABLE_HEADER` order."""
    rel = "0 (baseline)" if row.is_baseline else f"{row.rel.estimate:+.1f}"
    ci = "-" if row.is_baseline else f"[{row.rel.low:+.1f}, {row.rel.high:+.1f}]"
    paper = PAPER_RESULTS.get(row.strategy, {}).get(row.workers)
    paper_s = "-" if paper is None else f"{paper.speedup:g}x / " + (
        paper.note if paper.rel_wer_pct is None else f"{paper.rel_wer_pct:+g}%")
    d = row.vs_dense
    dense = "-" if d is None else f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}]"
    ins, dels, subs = row.error_kinds
    dev = row.training.final_dev_loss
    return [row.name, row.strategy, str(row.workers), str(row.group_size), str(row.training.updates),
            "-" if dev is None else f"{dev:.3f}", f"{row.test_wer:.2f}", f"{ins}/{dels}/{subs}", rel, ci,
            dense, _bytes(row.bytes_per_step), _ms(row.time_split, "compute"),
            _ms(row.time_split, "encode_decode"), _ms(row.time_split, "communicate"),
            f"{row.modeled_speedup:.1f}x", paper_s]


TABLE_HEADER = ["name", "strategy", "N", "g", "updates", "dev loss", "WER %", "ins/del/sub", "rel. WER %", "95% CI",
                "vs all-reduce (CI)", "bytes/step", "sim compute ms", "sim enc/dec ms", "sim comm ms", "speed-up*",
                "paper"]


def format_table(rows: Sequence[Row]) -> str:
    """Fixed-width text table for the terminal (the recipe's last stage prints it)."""
    lines = [TABLE_HEADER] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADER))]
    text = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text) + "\n* speed-up is MODELLED (cost model); every other column is MEASURED\n"


def markdown_table(rows: Sequence[Row]) -> str:
    """The trade-off table as GitHub markdown."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def paper_markdown() -> str:
    """:data:`PAPER_RESULTS` as a markdown table (speed-up / relative WER increase)."""
    strategies = list(PAPER_RESULTS)
    workers = sorted({n for cells in PAPER_RESULTS.values() for n in cells})
    lines = ["| workers | " + " | ".join(strategies) + " |", "|---|" + "---|" * len(strategies)]
    for n in workers:
        cells = []
        for s in strategies:
            c = PAPER_RESULTS[s].get(n)
            rel = "-" if c is None else (c.note if c.rel_wer_pct is None else f"{c.rel_wer_pct:+g}%")
            cells.append("-" if c is None else f"{c.speedup:g}x / {rel}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scenario_line(scenario: Scenario, source: str) -> str:
    """One sentence naming the cost-model scenario (cluster links and topology)."""
    return (f"{scenario.workers_per_node} workers per node over `{scenario.intra_link}`, nodes over "
            f"`{scenario.inter_link}` (scenario `{source}`; presets in `asr_trainer/report/network.py`)")


def report_markdown(rows: Sequence[Row], cfg: ReportConfig, scenario: Scenario, scenario_source: str,
                    plots: Sequence[str] = ()) -> str:
    """The whole ``report.md``: settings, the trade-off table, what is measured / modelled, the paper."""
    base = rows[0]
    pct = f"{cfg.level * 100:g}%"
    parts = [
        "# Distributed training: WER against speed-up\n",
        f"Test set `{cfg.set_name}`, decoding `{cfg.method}`; baseline `{base.name}` (1 worker): "
        f"WER {base.test_wer:.2f}% on {base.num_utts} utterances, {base.ref_words} words.\n",
        markdown_table(rows),
        spread_markdown(seed_spreads(rows)),
        "## What is measured and what is modelled\n",
        "- MEASURED: optimizer updates of the run and its dev loss (CTC loss per output frame) after the "
        "last epoch, from `train-summary.json` (the dev-loss plot draws every epoch): a run far from the "
        "baseline's updates or dev loss is under-trained, and its WER says more about that than about its "
        "strategy;",
        f"- MEASURED: WER; relative WER increase = (WER - WER_baseline) / WER_baseline * 100 with a "
        f"{pct} CI from a PAIRED per-utterance bootstrap ({cfg.n_resamples} resamples, seed {cfg.seed}; "
        "utterances paired by cut id, the same resample applied to both systems); the same against the "
        "dense all-reduce run of the same N (`vs all-reduce`, where the study has one): what compressing "
        "the synchronisation costs once the large effective batch is taken out; bytes sent per worker "
        "per step and the step-time split (compute, GTC encode/decode, communication), in milliseconds, "
        "as `sync_stats.json` records them on the machine that trained (a simulated run hosts every "
        "worker in one process, so its times are totals over the workers).",
        f"- MODELLED: speed-up = N * t(1) / t(N) from the cost model (`asr_trainer/report/cost_model.py`) "
        f"on {scenario_line(scenario, scenario_source)}, each worker a {scenario.gpu.name}: compute per "
        f"worker step max({scenario.gpu.step_floor_s * 1e3:g} ms, 6 * params * frames / "
        f"{scenario.gpu.sustained_flops:.3g} FLOP/s) for the run's own model and per-worker batch, a GTC round "
        f"max({scenario.gpu.gtc_floor_s * 1e3:g} ms, 4 * params / {scenario.gpu.gtc_bytes_per_s / 1e9:g} GB/s) "
        "(`asr_trainer/report/gpu_compute.py`), and the run's measured GTC density, bytes per sent element "
        "and BMUF block; throughput only: it has no convergence term. The `sim` columns are the step "
        "times of the machine that SIMULATED the cluster, not the cluster's, and are not used for the "
        "speed-up.\n",
        "## The paper (Amazon, Interspeech 2019): speed-up / relative WER increase\n",
        paper_markdown(),
    ]
    parts += [f"![{p}]({p})\n" for p in plots]
    return "\n".join(parts)


def write_tables(out_dir: Path, rows: Sequence[Row], cfg: ReportConfig, scenario: Scenario,
                 scenario_source: str, plots: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``report.md`` and ``results.csv`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path = out_dir / "report.md", out_dir / "results.csv"
    md.write_text(report_markdown(rows, cfg, scenario, scenario_source, plots), encoding="utf-8")
    write_csv(rows, csv_path)
    return md, csv_path
