"""Settings of the synthetic corpus builder (one frozen dataclass, loaded from YAML).

Voices are written ``"engine:voice"``; the engines are ``espeak-ng``, ``flite``,
``festival``, ``pico`` and ``piper`` (see :mod:`asr_trainer.data.synth.engines`).
A *base voice* belongs to exactly one split; each base voice becomes several
speakers by crossing it with the ``pitches`` and ``rates`` grids, and, in train only,
with the ``train_speeds`` grid (speed perturbation; a perturbed copy of a voice stays
in that voice's split, and dev and test are never perturbed).

Example::

    cfg = load_config(SynthConfig, "conf/data/synth-quick.yaml", ["seed=7"])
"""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "dev", "test")
ENGINES = ("espeak-ng", "flite", "festival", "pico", "piper")
NOISE_KINDS = ("white", "pink", "brown", "babble")


@dataclass(frozen=True)
class SynthConfig:
    """Seed, sizes, voices and degradations of the synthetic corpus."""

    seed: int = 1234
    # Sizes: target minutes of audio per split (estimated at planning time from the
    # word count; the log reports the real durations) and a floor on test words.
    train_minutes: float = 10.0
    dev_minutes: float = 2.5
    test_minutes: float = 2.5
    min_test_words: int = 0
    seconds_per_word: float = 0.32  # planning estimate at rate 1.0
    # Text: KJV clauses with this many words (inclusive bounds).
    min_words: int = 4
    max_words: int = 15
    # LM text: training sentences plus at most this many extra KJV clauses.
    lm_extra_sentences: int = 20000
    # Voices, disjoint by base voice across splits.
    train_voices: tuple[str, ...] = (
        "espeak-ng:en-us+m3", "espeak-ng:en-us+f3", "espeak-ng:en+m1", "espeak-ng:en+f2",
        "espeak-ng:en-gb-scotland+m4", "espeak-ng:en-gb-x-rp+f4", "espeak-ng:en-029+m7",
        "espeak-ng:en-gb-x-gbclan+m2", "espeak-ng:en-gb-x-gbcwmd+f1",
        "flite:awb", "flite:kal16", "festival:ked_diphone", "festival:kal_diphone",
        "pico:en-US",
    )
    dev_voices: tuple[str, ...] = ("flite:slt", "pico:en-GB")
    test_voices: tuple[str, ...] = ("flite:rms", "piper:joe")
    pitches: tuple[float, ...] = (0.88, 1.0, 1.12)  # multipliers of the voice's own pitch
    rates: tuple[float, ...] = (0.9, 1.0, 1.12)  # multipliers of the voice's own speed
    # Speed perturbation of training speakers (duration / factor, pitch x factor); (1.0,) = none.
    train_speeds: tuple[float, ...] = (1.0,)
    # Degradations, drawn per utterance.
    noise_prob: float = 0.7
    snr_db_min: float = 5.0
    snr_db_max: float = 20.0
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    babble_talkers: int = 4
    reverb_prob: float = 0.3
    num_rirs: int = 16
    rt60_min: float = 0.2
    rt60_max: float = 0.7
    audio_format: str = "flac"

    def __post_init__(self) -> None:
        for name in ("train_minutes", "dev_minutes", "test_minutes", "seconds_per_word"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(
                f"min_words/max_words must satisfy 1 <= min_words <= max_words, "
                f"got {self.min_words}/{self.max_words}"
            )
        for name in ("noise_prob", "reverb_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.snr_db_min > self.snr_db_max:
            raise ValueError(f"snr_db_min ({self.snr_db_min}) must be <= snr_db_max ({self.snr_db_max})")
        bad = [k for k in self.noise_kinds if k not in NOISE_KINDS]
        if bad or not self.noise_kinds:
            raise ValueError(f"noise_kinds must be a non-empty subset of {list(NOISE_KINDS)}, got {bad}")
        if self.babble_talkers < 1 or self.num_rirs < 1:
            raise ValueError("babble_talkers and num_rirs must be >= 1")
        if not 0.0 < self.rt60_min <= self.rt60_max:
            raise ValueError(f"rt60_min/rt60_max must satisfy 0 < min <= max, got {self.rt60_min}/{self.rt60_max}")
        if self.audio_format not in ("flac", "wav"):
            raise ValueError(f"audio_format must be flac or wav, got {self.audio_format!r}")
        if not self.pitches or not self.rates or any(v <= 0 for v in self.pitches + self.rates):
            raise ValueError("pitches and rates must be non-empty lists of positive multipliers")
        if not self.train_speeds or any(not 0.5 <= v <= 2.0 for v in self.train_speeds):
            raise ValueError(f"train_speeds must be a non-empty list of factors in [0.5, 2], got {self.train_speeds}")
        self._check_voices()

    def _check_voices(self) -> None:
        seen: dict[str, str] = {}
        for split in SPLITS:
            voices = getattr(self, f"{split}_voices")
            if not voices:
                raise ValueError(f"{split}_voices must name at least one voice")
            for spec in voices:
                engine, sep, voice = spec.partition(":")
                if not sep or engine not in ENGINES or not voice:
                    raise ValueError(
                        f"{split}_voices: {spec!r} must look like engine:voice with engine in {list(ENGINES)}"
                    )
                if seen.setdefault(spec, split) != split:
                    raise ValueError(f"voice {spec!r} is in both {seen[spec]}_voices and {split}_voices")

    def voices(self, split: str) -> tuple[str, ...]:
        """The base voices (``engine:voice``) of ``split``."""
        return getattr(self, f"{split}_voices")
