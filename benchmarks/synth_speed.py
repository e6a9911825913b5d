"""Synthesis speed of each TTS engine of the synthetic corpus (one process, one core).

Prints, per base voice, the real-time factor (synthesis seconds / audio seconds) over
a few KJV sentences, and the time the default profile's synthesis would take on
``--jobs`` cores given its voice mix.

    python benchmarks/synth_speed.py [--sentences 8] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time

from asr_trainer.config import load_config
from asr_trainer.data.synth.config import SPLITS, SynthConfig
from asr_trainer.data.synth.engines import Voice, synthesize
from asr_trainer.data.synth.plan import make_plan
from asr_trainer.data.synth.text import kjv_sentences
from asr_trainer.lang.pronunciations import load_cmudict


def engine_rtf(voice: Voice, sentences: list[str]) -> tuple[float, float]:
    """(real-time factor, seconds of audio) of ``voice`` over ``sentences`` (after a warm-up)."""
    synthesize(voice, sentences[0].lower())
    start, audio_s = time.perf_counter(), 0.0
    for s in sentences:
        audio_s += synthesize(voice, s.lower()).size / 16000
    return (time.perf_counter() - start) / audio_s, audio_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--config", default="conf/data/synth-default.yaml")
    args = parser.parse_args()
    cfg = load_config(SynthConfig, args.config)
    sentences, _ = kjv_sentences(load_cmudict(), cfg.min_words, cfg.max_words)
    sample = sentences[1000 : 1000 + args.sentences]
    rtf: dict[str, float] = {}
    print(f"{'voice':32s} {'RTF':>8s} {'audio s':>8s}")
    for split in SPLITS:
        for spec in cfg.voices(split):
            engine, _, base = spec.partition(":")
            rtf[spec], audio_s = engine_rtf(Voice(engine, base), sample)
            print(f"{spec:32s} {rtf[spec]:8.4f} {audio_s:8.1f}")
    plan = make_plan(cfg, sentences)
    est = 0.0
    for utts in plan.utterances.values():
        for u in utts:
            est += rtf[u.voice.base_id] * len(u.text.split()) * cfg.seconds_per_word / u.voice.rate
    print(f"estimated synthesis time of {args.config} on {args.jobs} cores: {est / args.jobs:.0f} s")


if __name__ == "__main__":
    main()
