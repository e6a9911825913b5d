"""``asr-trainer lang``: lexicon, tokens, Kneser-Ney LM and HLG (the lang stage)."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_trainer.lang.prepare import prepare_lang
from asr_trainer.lang.transcripts import read_transcripts
from asr_trainer.log import setup_logging

HELP = "build the lang directory: lexicon (phone or bpe<N>), 3-gram KN LM, L/G/HLG graphs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transcripts-from", type=Path, required=True,
                        help="training supervisions.jsonl.gz or cuts.jsonl.gz")
    parser.add_argument("--lm-text", type=Path, required=True, help="LM training text, one sentence a line")
    parser.add_argument("--units", default="phone", help="'phone' or 'bpe<N>', e.g. bpe500")
    parser.add_argument("--out-dir", type=Path, required=True, help="the lang directory to write")
    parser.add_argument("--ngram-order", type=int, default=3, help="order of the Kneser-Ney LM")
    parser.add_argument("--log-file", type=Path, help="also log to this file")


def run(args: argparse.Namespace) -> None:
    setup_logging(args.log_file)
    prepare_lang(read_transcripts(args.transcripts_from), args.lm_text, args.units,
                 args.out_dir, args.ngram_order)
