"""``asr-trainer prepare``: a corpus as lhotse manifests (the data stage)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asr_trainer.data.manifests import lm_text_path, manifest_path
from asr_trainer.errors import UserError
from asr_trainer.log import setup_logging

HELP = "prepare a corpus (synth, librispeech, mini_librispeech, kaldi) as lhotse manifests"
CORPORA = ("synth", "librispeech", "mini_librispeech", "kaldi")
SPLITS = ("train", "dev", "test")
log = logging.getLogger("asr_trainer.prepare")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", choices=CORPORA, default="synth",
                        help="synth: synthesised with TTS; kaldi: Kaldi data dirs <corpus-dir>/{train,dev,test}")
    parser.add_argument("--corpus-dir", type=Path, help="source directory (all corpora but synth)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the manifests and LM text go")
    parser.add_argument("--config", type=Path, help="synth: corpus settings (conf/data/synth-<profile>.yaml)")
    parser.add_argument("--train-parts", nargs="*", default=[],
                        help="librispeech: training parts, e.g. train-clean-100 (empty: the corpus's default)")
    parser.add_argument("--num-jobs", type=int, default=2, help="parallel jobs (synth: TTS processes)")
    parser.add_argument("--log-file", type=Path, help="also log to this file")
    parser.add_argument("overrides", nargs="*", help="synth settings as key=value")


def already_done(output_dir: Path, corpus: str) -> bool:
    """True when every split's manifests and the LM text exist."""
    paths = [manifest_path(output_dir, corpus, k, s) for s in SPLITS for k in ("recordings", "supervisions")]
    return all(p.is_file() for p in paths + [lm_text_path(output_dir, corpus)])


def run(args: argparse.Namespace) -> None:
    setup_logging(args.log_file)
    if already_done(args.output_dir, args.corpus):
        log.info("manifests of %s already in %s; nothing to do", args.corpus, args.output_dir)
        return
    if args.corpus != "synth" and args.corpus_dir is None:
        raise UserError(f"--corpus {args.corpus} needs --corpus-dir")
    manifests = _prepare(args)
    _write_lm_text_if_missing(manifests, args)


def _prepare(args: argparse.Namespace) -> dict:
    if args.corpus == "synth":
        from asr_trainer.config import load_config
        from asr_trainer.data.synth import SynthConfig, prepare_synth

        cfg = load_config(SynthConfig, args.config, args.overrides)
        return prepare_synth(args.output_dir, cfg, num_jobs=args.num_jobs)
    if args.corpus == "kaldi":
        from asr_trainer.data.kaldi_dir import prepare_kaldi_dirs

        return prepare_kaldi_dirs(args.corpus_dir, args.output_dir)
    from asr_trainer.data.librispeech import prepare_librispeech

    return prepare_librispeech(args.corpus_dir, args.output_dir, args.corpus, tuple(args.train_parts))


def _write_lm_text_if_missing(manifests: dict, args: argparse.Namespace) -> None:
    from asr_trainer.data.manifests import write_lm_text

    if not lm_text_path(args.output_dir, args.corpus).is_file():
        write_lm_text(manifests["train"]["supervisions"], args.output_dir, args.corpus)
