"""Worker-side execution of a plan: synthesise clean audio, then degrade it.

Two passes, each one task per utterance, run by :func:`parallel_map` over
``num_jobs`` processes: :func:`synthesize_clean` writes ``<clean_dir>/<id>.wav``;
:func:`render_utterance` reads it (and, for babble, other clean utterances of the
split), applies reverb then noise, and writes the corpus file. Workers get the
noise and RIR banks once, through :func:`init_worker`.
"""

from __future__ import annotations

import multiprocessing
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr_trainer.data.synth import degrade
from asr_trainer.data.synth.audio import SAMPLE_RATE, power, read_wav
from asr_trainer.data.synth.engines import EmptyAudioError, SynthesisError, synthesize
from asr_trainer.data.synth.plan import Utterance

CLEAN_RMS = 0.05  # about -26 dBFS
PEAK_LIMIT = 0.99
T = TypeVar("T")
R = TypeVar("R")

_BANKS: dict[str, object] = {"noise": {}, "rirs": []}


def init_worker(noise: dict[str, np.ndarray], rirs: list[np.ndarray]) -> None:
    """Give this process the noise bank (``{kind: samples}``) and the RIR bank."""
    _BANKS["noise"] = noise
    _BANKS["rirs"] = rirs


@dataclass(frozen=True)
class Rendered:
    """Outcome of one task: ``num_samples`` at 16 kHz, or the ``skip`` reason.

    ``noisy`` is False when planned noise could not be applied (no babble talker left).
    """

    id: str
    path: Path | None = None
    num_samples: int = 0
    skip: str | None = None
    noisy: bool = False


def synthesize_clean(task: tuple[Utterance, Path]) -> Rendered:
    """Speak ``utt.text`` with ``utt.voice``; write ``clean_dir/<id>.wav`` at ``CLEAN_RMS``."""
    utt, clean_dir = task
    try:
        audio = synthesize(utt.voice, utt.text.lower())
    except EmptyAudioError:
        return Rendered(utt.id, skip="empty_audio")
    except SynthesisError:
        return Rendered(utt.id, skip="synthesis_failed")
    audio = audio * np.float32(CLEAN_RMS / np.sqrt(power(audio)))
    path = clean_dir / f"{utt.id}.wav"
    sf.write(str(path), np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    return Rendered(utt.id, path, audio.size)


def render_utterance(task: tuple[Utterance, Path, Path]) -> Rendered:
    """Degrade ``clean_dir/<id>.wav`` as planned and write ``out_path``.

    Babble sources whose clean audio is missing (skipped) are left out; with none
    left the utterance stays clean of noise (the returned plan records that).
    """
    utt, clean_dir, out_path = task
    speech, _ = read_wav(clean_dir / f"{utt.id}.wav")
    rng = random.Random(utt.seed)
    if utt.rir is not None:
        speech = degrade.reverberate(speech, _BANKS["rirs"][utt.rir])
    noisy, applied = speech, False
    if utt.noise is not None:
        noise = _noise_for(utt, clean_dir, speech.size, rng)
        if noise is not None:
            noisy, applied = degrade.add_noise(speech, noise, utt.snr_db), True
    peak = float(np.max(np.abs(noisy)))
    if peak > PEAK_LIMIT:
        noisy = noisy * np.float32(PEAK_LIMIT / peak)
    sf.write(str(out_path), noisy, SAMPLE_RATE)
    return Rendered(utt.id, out_path, noisy.size, noisy=applied)


def _noise_for(utt: Utterance, clean_dir: Path, length: int, rng: random.Random) -> np.ndarray | None:
    if utt.noise != "babble":
        return degrade.noise_segment(_BANKS["noise"][utt.noise], length, rng)
    paths = [clean_dir / f"{i}.wav" for i in utt.babble]
    talkers = [read_wav(p)[0] for p in paths if p.is_file()]
    return degrade.babble(talkers, length, rng) if talkers else None


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    num_jobs: int,
    desc: str,
    initargs: tuple = ({}, []),
) -> Iterator[R]:
    """``map(fn, items)`` in order over ``num_jobs`` forked processes, with a tqdm bar."""
    bar: Iterable[R]
    if num_jobs <= 1:
        init_worker(*initargs)
        bar = map(fn, items)
        yield from tqdm(bar, total=len(items), desc=desc, unit="utt")
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(num_jobs, initializer=init_worker, initargs=initargs) as pool:
        chunk = max(1, min(16, len(items) // (4 * num_jobs)))
        yield from tqdm(pool.imap(fn, items, chunksize=chunk), total=len(items), desc=desc, unit="utt")
