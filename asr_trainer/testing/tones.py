"""A tiny learnable corpus of tones, for tests and benchmarks (no TTS, no downloads).

Each letter of a transcript is a pure tone of its own frequency lasting
``letter_s`` seconds (a space is a short silence), plus a little noise. Fbank
features are computed with lhotse and stored with ``LilcomChunkyWriter``,
exactly like the real features stage, so the same code paths are exercised.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter, Recording, SupervisionSegment

SAMPLE_RATE = 16000
ALPHABET = "ABCDEFGH"


WORD_SEP = "|"


def char_encode(text: str, alphabet: str = ALPHABET) -> list[int]:
    """Toy tokenizer: letter ``alphabet[i]`` -> id ``i + 1``, a space -> ``|`` (id ``len(alphabet) + 1``)."""
    return [alphabet.index(c) + 1 if c != " " else len(alphabet) + 1 for c in text]


def char_id2token(alphabet: str = ALPHABET) -> dict[int, str]:
    """``id -> token`` of :func:`char_encode` (0 is ``<blk>``); ``num_outputs = len(alphabet) + 2``."""
    return {0: "<blk>", **{i + 1: c for i, c in enumerate(alphabet)}, len(alphabet) + 1: WORD_SEP}


def tone_audio(text: str, rng: np.random.Generator, letter_s: float = 0.12, alphabet: str = ALPHABET) -> np.ndarray:
    """Float32 mono audio at 16 kHz spelling ``text`` as tones."""
    n = int(letter_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pieces = [np.zeros(n // 2)]
    for c in text:
        if c == " ":
            pieces.append(np.zeros(n // 2))
        else:
            freq = 300.0 * (1.25 ** alphabet.index(c))
            pieces.append(0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(n))
    pieces.append(np.zeros(n // 2))
    audio = np.concatenate(pieces)
    return (audio + 0.003 * rng.standard_normal(audio.size)).astype(np.float32)


def random_text(rng: random.Random, max_words: int = 3, alphabet: str = ALPHABET) -> str:
    """Upper-case 'words' of 1-4 letters from ``alphabet``."""
    return " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
                    for _ in range(rng.randint(1, max_words)))


def make_tone_cuts(out_dir: Path, num_cuts: int, seed: int = 0, max_words: int = 3, speakers: int = 2) -> CutSet:
    """Write ``num_cuts`` tone utterances + lilcom fbank under ``out_dir``; return their cuts."""
    out_dir = Path(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    cuts = []
    for i in range(num_cuts):
        text = random_text(rng, max_words)
        path = out_dir / "wav" / f"utt{seed}-{i:04d}.wav"
        sf.write(path, tone_audio(text, nrng), SAMPLE_RATE)
        rec = Recording.from_file(path, recording_id=path.stem)
        cut = rec.to_cut()
        cut.supervisions = [SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration,
                                               text=text, speaker=f"spk{i % speakers}")]
        cuts.append(cut)
    return CutSet.from_cuts(cuts).compute_and_store_features(
        extractor=Fbank(FbankConfig(num_mel_bins=80)), storage_path=out_dir / "feats",
        storage_type=LilcomChunkyWriter, num_jobs=1,
    ).to_eager()


def write_tone_corpus(root: Path, sizes: dict[str, int]) -> Path:
    """A tiny corpus on disk for tests: ``root/cuts/synth_cuts_<split>.jsonl.gz`` and a character ``root/lang``.

    ``sizes``: cuts per split, e.g. ``{"train": 24, "dev": 2}``; split ``i`` (in order) is seeded ``i + 1``.
    ``lang/tokens.txt`` is ``<blk>``, the alphabet, ``SPN`` (id ``len(ALPHABET) + 1``, :func:`char_encode`'s
    word separator), ``#0``; ``lang/lexicon.txt`` spells every word of the corpus letter by letter.
    Returns ``root``.
    """
    sets = {split: make_tone_cuts(root / split, n, seed=i + 1) for i, (split, n) in enumerate(sizes.items())}
    (root / "cuts").mkdir(parents=True, exist_ok=True)
    for split, cuts in sets.items():
        cuts.to_file(root / "cuts" / f"synth_cuts_{split}.jsonl.gz")
    lang = root / "lang"
    lang.mkdir(exist_ok=True)
    tokens = ["<blk>", *ALPHABET, "SPN", "#0"]
    (lang / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)))
    words = sorted({w for cuts in sets.values() for c in cuts for w in c.supervisions[0].text.split()})
    (lang / "lexicon.txt").write_text("<UNK> SPN\n" + "".join(f"{w} {' '.join(w)}\n" for w in words))
    return root
