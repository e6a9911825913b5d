#!/usr/bin/env python
"""Decoding real-time factor on CPU: kaldi-decoder (HlgDecoder) vs k2, same HLG, same log-probs.

Run from the main environment; the k2 side runs in the k2 environment
(local/make_k2_env.sh, or --k2-env) as a subprocess.  Inputs are the synthetic
noisy posteriorgrams of KJV verses of ``benchmarks/hlg_decode_rtf.py`` (its
text selection and posteriorgram generator are reused).  One output frame is
30 ms of audio (10 ms frames subsampled by 3): RTF = decode seconds / audio
seconds.  Graph loading is timed apart: k2's first load converts HLG.fst
(text export, epsilon removal) and caches HLG.k2.pt; the second load reads
the cache.

Usage: python benchmarks/decode_rtf.py [--vocab 2000] [--utts 40] [--peak 3] [--beam 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hlg_decode_rtf import FRAME_SECONDS, kjv_sentences, posteriorgram  # noqa: E402

from asr_trainer.decode.k2_crosscheck import k2_python, run_k2_decode, save_posteriors, word_errors  # noqa: E402
from asr_trainer.decode.wfst import HlgDecoder  # noqa: E402
from asr_trainer.lang.prepare import prepare_lang  # noqa: E402
from asr_trainer.lang.tokenizer import Tokenizer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--units", default="phone")
    p.add_argument("--utts", type=int, default=40)
    p.add_argument("--peak", type=float, default=3.0)
    p.add_argument("--beam", type=float, default=15.0)
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--min-active", type=int, default=30)
    p.add_argument("--k2-env", type=Path)
    args = p.parse_args()
    python = k2_python(args.k2_env)
    if python is None:
        sys.exit("k2 environment not built: run local/make_k2_env.sh (or pass --k2-env)")
    sentences = kjv_sentences(args.vocab)
    test, train = sentences[::10][: args.utts], [s for i, s in enumerate(sentences) if i % 10]
    with tempfile.TemporaryDirectory() as tmp:
        lm_text, lang = Path(tmp) / "lm.txt", Path(tmp) / "lang"
        lm_text.write_text("\n".join(train) + "\n")
        prepare_lang(train, lm_text, args.units, lang)
        tok = Tokenizer.from_lang_dir(lang)
        rng = np.random.default_rng(0)
        inputs = {f"u{i}": posteriorgram(tok.encode(s), tok.num_outputs, 2, args.peak, rng)
                  for i, s in enumerate(test)}
        refs = {f"u{i}": s.split() for i, s in enumerate(test)}
        save_posteriors(Path(tmp) / "post.npz", inputs, refs)

        start = time.perf_counter()
        decoder = HlgDecoder(lang, beam=args.beam, max_active=args.max_active, min_active=args.min_active)
        kaldi_load = time.perf_counter() - start
        start = time.perf_counter()
        kaldi = {c: decoder.decode(x) for c, x in inputs.items()}
        kaldi_s = time.perf_counter() - start
        runs = [run_k2_decode(python, lang, Path(tmp) / "post.npz", Path(tmp) / f"k2-{i}.json", args.beam,
                              args.max_active, args.min_active) for i in range(2)]
        hlg_mb = (lang / "HLG.fst").stat().st_size / 2**20
    audio_s = sum(x.shape[0] for x in inputs.values()) * FRAME_SECONDS
    k2_hyps = runs[1]["hyps"]
    identical = sum(kaldi[c] == k2_hyps[c] for c in inputs)
    print(f"HLG: vocabulary {args.vocab} words, units={args.units}, HLG.fst {hlg_mb:.1f} MiB; "
          f"{len(inputs)} utts = {audio_s:.1f} s audio at 30 ms/frame; beam {args.beam}, peak {args.peak}")
    for name, hyps, load_s, dec_s in (
            ("kaldi-decoder", kaldi, kaldi_load, kaldi_s),
            ("k2 (CPU)", k2_hyps, runs[1]["load_s"], min(r["decode_s"] for r in runs))):
        errors, words = word_errors(refs, hyps)
        print(f"{name:14s} load {load_s:6.2f} s  decode {dec_s:6.2f} s  RTF {dec_s / audio_s:.4f}  "
              f"WER {100 * errors / words:.2f}%")
    print(f"k2 first load (convert HLG.fst + cache HLG.k2.pt): {runs[0]['load_s']:.2f} s; "
          f"identical one-best: {identical}/{len(inputs)}")


if __name__ == "__main__":
    main()
