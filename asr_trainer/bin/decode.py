"""``asr-trainer decode``: greedy CTC or HLG decoding of dev and test, with WER files."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_trainer.config import load_config
from asr_trainer.log import setup_logging

HELP = "decode dev/test with the averaged model (greedy or HLG) and write recogs/errs/wer-summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("conf/decode.yaml"), help="decoding settings (YAML)")
    parser.add_argument("--exp-dir", type=Path, required=True,
                        help="the trained run: epoch-N.pt checkpoints (the last `avg` are averaged); outputs go here")
    parser.add_argument("--lang-dir", type=Path, required=True, help="lang dir: tokens.txt, words.txt, HLG")
    parser.add_argument("--cuts-dir", type=Path, required=True,
                        help="dir with <corpus>_cuts_<split>.jsonl.gz of dev and test")
    parser.add_argument("--method", choices=["greedy", "hlg"], default="hlg",
                        help="greedy CTC (best path, no graph) or HLG (lexicon + n-gram LM graph search)")
    parser.add_argument("overrides", nargs="*", help="key=value settings of conf/decode.yaml")


def run(args: argparse.Namespace) -> None:
    from asr_trainer.decode.config import DecodeConfig
    from asr_trainer.decode.driver import run_decoding
    from asr_trainer.lang.tokenizer import Tokenizer

    cfg = load_config(DecodeConfig, args.config, args.overrides)
    setup_logging(args.exp_dir / "log" / f"log-decode-{args.method}.txt")
    tokenizer = Tokenizer.from_lang_dir(args.lang_dir)
    run_decoding(cfg, args.exp_dir, args.lang_dir, args.cuts_dir, args.method, tokenizer)
