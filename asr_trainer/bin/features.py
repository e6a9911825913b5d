"""``asr-trainer features``: 80-dim fbank for every split, stored with lilcom (the feature stage)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_trainer.config import load_config
from asr_trainer.data.features import FeatureConfig, compute_fbank
from asr_trainer.log import setup_logging

HELP = "compute 80-dim fbank features of a prepared corpus with lhotse (lilcom storage)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="synth", help="corpus name: reads <corpus>_*_<split>.jsonl.gz")
    parser.add_argument("--manifest-dir", type=Path, required=True, help="lhotse manifests (asr-trainer prepare)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the fbank features and cuts go")
    parser.add_argument("--splits", nargs="+", default=["train", "dev", "test"], help="splits to compute")
    parser.add_argument("--config", type=Path, help="feature settings (conf/features.yaml)")
    parser.add_argument("--log-file", type=Path, help="also log to this file")
    parser.add_argument("overrides", nargs="*", help="settings as key=value, e.g. speed_perturb=true")


def run(args: argparse.Namespace) -> None:
    setup_logging(args.log_file)
    cfg = load_config(FeatureConfig, args.config, args.overrides)
    compute_fbank(args.manifest_dir, args.corpus, args.splits, args.output_dir, cfg)
