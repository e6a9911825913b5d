"""The corpus plan: which sentence each utterance says, in which voice, with which noise.

Everything random is drawn here, in the parent process, from ``random.Random(seed)``,
so a seed fixes ids, texts, speakers and degradations; the workers only execute.

Sentences are shuffled once; test is filled first, then dev, then train, so the
three splits never share a sentence. The LM text is every remaining sentence
(training sentences first, then up to ``lm_extra_sentences`` unused clauses): it
never contains a dev or test sentence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from asr_trainer.data.synth.config import SPLITS, SynthConfig
from asr_trainer.data.synth.engines import Voice
from asr_trainer.errors import UserError


@dataclass(frozen=True)
class Utterance:
    """One planned utterance; ``rir`` indexes the RIR bank, ``babble`` lists source ids."""

    id: str
    split: str
    text: str  # normalised: upper case, no punctuation
    voice: Voice
    noise: str | None = None  # white | pink | brown | babble
    snr_db: float | None = None
    rir: int | None = None
    babble: tuple[str, ...] = ()
    seed: int = 0  # per-utterance seed for noise offsets


@dataclass(frozen=True)
class CorpusPlan:
    """Utterances by split, plus the LM training sentences."""

    utterances: dict[str, list[Utterance]]
    lm_sentences: list[str]


def split_speakers(config: SynthConfig, split: str) -> dict[str, dict[str, list[Voice]]]:
    """``{engine: {base: [Voice for every pitch x rate (x speed)]}}`` for the base voices of ``split``.

    Speeds are ``config.train_speeds`` in train and 1.0 elsewhere; with the single speed
    1.0 the list (and so the seeded plan) is the pitch x rate grid alone.
    """
    speeds = config.train_speeds if split == "train" else (1.0,)
    out: dict[str, dict[str, list[Voice]]] = {}
    for spec in config.voices(split):
        engine, _, base = spec.partition(":")
        variants = [
            Voice(engine, base, p, r, s) for p in config.pitches for r in config.rates for s in speeds
        ]
        out.setdefault(engine, {})[base] = variants
    return out


def make_plan(config: SynthConfig, sentences: list[str]) -> CorpusPlan:
    """Draw the whole corpus from ``sentences`` (distinct, normalised) and ``config.seed``."""
    rng = random.Random(config.seed)
    pool = list(sentences)
    rng.shuffle(pool)
    utterances: dict[str, list[Utterance]] = {}
    for split in ("test", "dev", "train"):
        utterances[split] = _plan_split(config, split, pool, rng)
        pool = pool[len(utterances[split]):]
    train_text = [u.text for u in utterances["train"]]
    lm = train_text + pool[: config.lm_extra_sentences]
    return CorpusPlan({s: utterances[s] for s in SPLITS}, lm)


def _plan_split(config: SynthConfig, split: str, pool: list[str], rng: random.Random) -> list[Utterance]:
    speakers = split_speakers(config, split)
    engines = sorted(speakers)
    target_s = 60.0 * getattr(config, f"{split}_minutes")
    min_words = config.min_test_words if split == "test" else 0
    planned: list[tuple[str, Voice]] = []
    seconds = 0.0
    words = 0
    for text in pool:
        if seconds >= target_s and words >= min_words:
            break
        engine = rng.choice(engines)
        base = rng.choice(sorted(speakers[engine]))
        voice = rng.choice(speakers[engine][base])
        n = len(text.split())
        planned.append((text, voice))
        seconds += n * config.seconds_per_word / (voice.rate * voice.speed)
        words += n
    if seconds < target_s or words < min_words:
        raise UserError(
            f"not enough KJV sentences for {split}_minutes={target_s / 60:g}"
            f" (and min_test_words): lower the sizes"
        )
    ids = [f"{voice.speaker_id}-{split}-{i:05d}" for i, (_, voice) in enumerate(planned)]
    return [
        _degradation(config, Utterance(uid, split, text, voice), ids, rng)
        for uid, (text, voice) in zip(ids, planned)
    ]


def _degradation(config: SynthConfig, utt: Utterance, ids: list[str], rng: random.Random) -> Utterance:
    """Draw noise kind, SNR, RIR and babble talkers for one utterance."""
    noise = snr = rir = None
    babble: tuple[str, ...] = ()
    if rng.random() < config.noise_prob:
        noise = rng.choice(config.noise_kinds)
        snr = round(rng.uniform(config.snr_db_min, config.snr_db_max), 2)
        if noise == "babble":
            drawn = rng.sample(ids, min(config.babble_talkers + 1, len(ids)))
            babble = tuple(i for i in drawn if i != utt.id)[: config.babble_talkers]
            if not babble:
                noise = snr = None
    if rng.random() < config.reverb_prob:
        rir = rng.randrange(config.num_rirs)
    return Utterance(
        utt.id, utt.split, utt.text, utt.voice, noise, snr, rir, babble, rng.randrange(2**31)
    )
