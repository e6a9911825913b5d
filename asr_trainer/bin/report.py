"""``asr-trainer report``: the WER / speed-up trade-off table of every experiment, with plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_trainer.config import from_dict, load_config
from asr_trainer.log import setup_logging

HELP = "tabulate and plot relative WER increase (paired bootstrap CI) and modelled speed-up per strategy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp-root", type=Path, required=True, help="directory holding one sub-directory per run")
    parser.add_argument("--baseline", required=True, help="name of the 1-worker baseline's directory")
    parser.add_argument("--set", dest="set_name", default="test",
                        help="decoded set to score (recogs-<set>-<method>.txt)")
    parser.add_argument("--method", choices=["hlg", "greedy"], default="hlg", help="decoding method to score")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: <exp-root>/report")
    parser.add_argument("--scenario", type=Path, default=Path("conf/cost_model.yaml"),
                        help="cost-model scenario (cluster links, topology) for the modelled speed-up")
    parser.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("overrides", nargs="*", help="key=value settings of the scenario YAML")


def run(args: argparse.Namespace) -> None:
    from asr_trainer.report.collect import ReportConfig, collect_rows
    from asr_trainer.report.cost_model import Scenario
    from asr_trainer.report.plots import write_plots
    from asr_trainer.report.tables import format_table, write_tables

    out_dir = args.out_dir or args.exp_root / "report"
    cfg = from_dict(ReportConfig, {"set_name": args.set_name, "method": args.method,
                                   "n_resamples": args.n_resamples, "seed": args.seed}, "command line")
    scenario = load_config(Scenario, args.scenario, args.overrides)
    setup_logging(out_dir / "log-report.txt")
    rows = collect_rows(args.exp_root, args.baseline, cfg, scenario)
    plots = write_plots(rows, out_dir)
    md, csv_path = write_tables(out_dir, rows, cfg, scenario, str(args.scenario), plots)
    print(format_table(rows), end="")
    print(f"wrote {md}, {csv_path} and {len(plots)} plots in {out_dir}")
