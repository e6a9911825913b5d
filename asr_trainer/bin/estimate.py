"""``asr-trainer estimate``: how long a recipe's training and decoding will take, from a short throughput probe.

    asr-trainer estimate --lang-dir data/lang_phone --cuts-dir data/fbank --strategy-workers "4 4 4 4" \
        --decodes 5 num_epochs=15 device=cuda
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from asr_trainer.bin.launch_plan import parse_counts
from asr_trainer.bin.train import split_overrides
from asr_trainer.config import load_config

HELP = "estimate a recipe's training and decoding time from a few timed training steps on its own data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("conf/train.yaml"), help="training settings (YAML)")
    parser.add_argument("--lang-dir", type=Path, required=True, help="lang dir with tokens.txt")
    parser.add_argument("--cuts-dir", type=Path, required=True, help="dir with <corpus>_cuts_<split>.jsonl.gz")
    parser.add_argument("--baseline-runs", type=int, choices=[0, 1], default=1,
                        help="1 when the 1-worker baseline is still to train")
    parser.add_argument("--strategy-workers", default="",
                        help="the worker count of every strategy run still to train, e.g. '4 4 4 4'")
    parser.add_argument("--decodes", type=int, default=0, help="systems still to decode")
    parser.add_argument("--probe-steps", type=int, default=6, help="training steps timed (after a warm-up step)")
    parser.add_argument("overrides", nargs="*", help="key=value settings of the runs, as for asr-trainer train")


def run(args: argparse.Namespace) -> None:
    from asr_trainer.data.cuts import load_cuts
    from asr_trainer.lang.tokenizer import Tokenizer
    from asr_trainer.models import ModelConfig
    from asr_trainer.train.config import TrainConfig
    from asr_trainer.train.estimate import Machine, Workload, estimate_lines
    from asr_trainer.train.throughput import probe_real_time_factor

    plain, model_overrides, _ = split_overrides(args.overrides)
    cfg = load_config(TrainConfig, args.config, plain)
    model_cfg = load_config(ModelConfig, cfg.model_config, model_overrides)
    tokenizer = Tokenizer.from_lang_dir(args.lang_dir)
    cuts = load_cuts(args.cuts_dir, cfg.data.corpus, cfg.data.train_split, lazy=True)
    if cfg.data.max_train_cuts:
        cuts = cuts.subset(first=cfg.data.max_train_cuts)
    audio_s = sum(c.duration for c in cuts)
    rtf = probe_real_time_factor(cfg, model_cfg, cuts, tokenizer.encode, tokenizer.num_outputs, args.probe_steps)
    work = Workload(args.baseline_runs, parse_counts(args.strategy_workers, "--strategy-workers"), args.decodes)
    machine = Machine(cfg.device, len(os.sched_getaffinity(0)), cfg.num_threads)
    print("\n".join(estimate_lines(audio_s, cfg.num_epochs, rtf, work, machine)))
