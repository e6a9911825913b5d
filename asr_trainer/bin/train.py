"""``asr-trainer train``: single-worker baseline training."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from asr_trainer.config import load_config
from asr_trainer.log import setup_logging

HELP = "train a CTC acoustic model on one worker (CPU or one GPU); resumes from the latest checkpoint"
MODEL_PREFIX = "model."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("conf/train.yaml"), help="training settings (YAML)")
    parser.add_argument("--exp-dir", type=Path, required=True, help="where checkpoints, logs, tensorboard go")
    parser.add_argument("--lang-dir", type=Path, required=True, help="lang dir with tokens.txt")
    parser.add_argument("--cuts-dir", type=Path, required=True, help="dir with <corpus>_cuts_<split>.jsonl.gz")
    parser.add_argument("overrides", nargs="*", help="key=value settings; model.<key>=value for the model config")


def run(args: argparse.Namespace) -> None:
    from asr_trainer.lang.tokenizer import Tokenizer
    from asr_trainer.models import ModelConfig
    from asr_trainer.train.config import TrainConfig
    from asr_trainer.train.fit import fit, load_cuts

    model_overrides = [o[len(MODEL_PREFIX):] for o in args.overrides if o.startswith(MODEL_PREFIX)]
    cfg = load_config(TrainConfig, args.config, [o for o in args.overrides if not o.startswith(MODEL_PREFIX)])
    model_cfg = load_config(ModelConfig, cfg.model_config, model_overrides)
    args.exp_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(args.exp_dir / "log" / "log-train.txt")
    (args.exp_dir / "train.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    (args.exp_dir / "model.yaml").write_text(yaml.safe_dump(dataclasses.asdict(model_cfg), sort_keys=False))
    tokenizer = Tokenizer.from_lang_dir(args.lang_dir)
    train_cuts = load_cuts(args.cuts_dir, cfg.data.corpus, cfg.data.train_split)
    valid_cuts = load_cuts(args.cuts_dir, cfg.data.corpus, cfg.data.valid_split)
    fit(cfg, model_cfg, args.exp_dir, tokenizer.encode, tokenizer.num_outputs, train_cuts, valid_cuts)
