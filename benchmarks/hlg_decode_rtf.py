#!/usr/bin/env python
"""prepare_lang time on a ~5,000-word KJV text, and HLG decoding real-time factor.

Text: KJV verses (Debian's ``bible`` program) upper-cased, punctuation removed,
keeping verses whose words all have a CMUdict pronunciation, in Bible order
until the vocabulary reaches ``--vocab`` words.

Decoding input: synthetic CTC posteriorgrams of held-out verses -- each phone
(or piece) for ``--frames-per-token`` frames then a blank, on noisy logits
(standard-normal noise, +``--peak`` on the true token), log-softmaxed.  One
output frame is 30 ms (10 ms lhotse frame shift, subsampling 3), so
RTF = decode seconds / (frames * 0.03 s).

Usage: python benchmarks/hlg_decode_rtf.py [--vocab 5000] [--units phone] [--utts 40]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from asr_trainer.decode.wfst import HlgDecoder
from asr_trainer.lang.prepare import prepare_lang
from asr_trainer.lang.pronunciations import load_cmudict
from asr_trainer.lang.tokenizer import Tokenizer

FRAME_SECONDS = 0.010 * 3


def kjv_sentences(max_vocab: int) -> list[str]:
    """Covered KJV verses in order until the vocabulary has ``max_vocab`` words."""
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True)
    cmu = load_cmudict()
    vocab: set[str] = set()
    sentences = []
    for line in out.stdout.splitlines():
        words = re.sub(r"[^A-Z' ]", " ", line.split(" ", 1)[-1].upper()).split()
        if words and all(w in cmu for w in words):
            if len(vocab) >= max_vocab and not set(words) <= vocab:
                continue
            vocab.update(words)
            sentences.append(" ".join(words))
    return sentences


def posteriorgram(ids: list[int], num_outputs: int, frames_per_token: int, peak: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Noisy (T, V) CTC log-posteriors whose best path spells ``ids``."""
    frames = [f for i in ids for f in [i] * frames_per_token + [0]]
    logits = rng.standard_normal((len(frames), num_outputs))
    logits[np.arange(len(frames)), frames] += peak
    logits -= logits.max(axis=1, keepdims=True)
    return (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=5000)
    p.add_argument("--units", default="phone")
    p.add_argument("--utts", type=int, default=40)
    p.add_argument("--frames-per-token", type=int, default=2)
    p.add_argument("--peak", type=float, default=4.0)
    p.add_argument("--beam", type=float, default=16.0)
    args = p.parse_args()
    import kaldialign

    sentences = kjv_sentences(args.vocab)
    test, train = sentences[:: 10][: args.utts], [s for i, s in enumerate(sentences) if i % 10]
    words = {w for s in sentences for w in s.split()}
    with tempfile.TemporaryDirectory() as tmp:
        lm_text = Path(tmp) / "lm.txt"
        lm_text.write_text("\n".join(train) + "\n")
        lang = Path(tmp) / "lang"
        start = time.perf_counter()
        prepare_lang(train, lm_text, args.units, lang)
        prep_s = time.perf_counter() - start
        hlg_mb = (lang / "HLG.fst").stat().st_size / 2**20
        tok = Tokenizer.from_lang_dir(lang)
        rng = np.random.default_rng(0)
        inputs = [posteriorgram(tok.encode(s), tok.num_outputs, args.frames_per_token, args.peak, rng)
                  for s in test]
        start = time.perf_counter()
        decoder = HlgDecoder(lang, beam=args.beam)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        hyps = decoder.decode_batch(inputs)
        dec_s = time.perf_counter() - start
        shutil.rmtree(lang, ignore_errors=True)
    frames = sum(x.shape[0] for x in inputs)
    errors = sum(kaldialign.edit_distance(s.split(), h)["total"] for s, h in zip(test, hyps))
    ref_words = sum(len(s.split()) for s in test)
    print(f"text: {len(sentences)} KJV verses, vocabulary {len(words)} words, "
          f"LM text {len(train)} verses; units={args.units}")
    print(f"prepare_lang: {prep_s:.1f} s  (HLG.fst {hlg_mb:.1f} MiB, load {load_s:.2f} s)")
    print(f"decode: {len(test)} utts, {frames} frames = {frames * FRAME_SECONDS:.1f} s audio "
          f"at 30 ms/frame, {dec_s:.2f} s -> RTF {dec_s / (frames * FRAME_SECONDS):.4f} "
          f"(beam {args.beam}), WER on synthetic posteriors {100 * errors / ref_words:.1f}%")


if __name__ == "__main__":
    main()
