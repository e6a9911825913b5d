"""Degradations: coloured noise (sox), babble, room reverberation (pyroomacoustics).

SNR is defined on mean power over the whole utterance:
``snr_db = 10 log10(power(speech) / power(noise))``, where ``speech`` is the
(possibly reverberant) signal before noise is added.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np

from asr_trainer.data.synth.audio import SAMPLE_RATE, power, read_wav
from asr_trainer.data.synth.engines import check_program

NOISE_BANK_SECONDS = 60.0
SOX_NOISE = {"white": "whitenoise", "pink": "pinknoise", "brown": "brownnoise"}


def make_noise_bank(out_dir: Path, kinds: tuple[str, ...]) -> dict[str, Path]:
    """Write ``NOISE_BANK_SECONDS`` of each coloured noise with sox (repeatable mode, ``-R``).

    Returns ``{kind: wav path}`` for the kinds other than babble.
    """
    check_program("sox")
    out_dir.mkdir(parents=True, exist_ok=True)
    bank = {}
    for kind in kinds:
        if kind not in SOX_NOISE:
            continue
        path = out_dir / f"noise_{kind}.wav"
        cmd = [
            "sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path),
            "synth", str(NOISE_BANK_SECONDS), SOX_NOISE[kind], "gain", "-n", "-3",
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        bank[kind] = path
    return bank


def load_noise_bank(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Read a noise bank written by :func:`make_noise_bank`."""
    return {kind: read_wav(path)[0] for kind, path in paths.items()}


def make_rir_bank(
    num: int, seed: int, rt60_min: float, rt60_max: float, max_seconds: float = 0.8
) -> list[np.ndarray]:
    """``num`` seeded shoe-box room impulse responses at 16 kHz, peak 1, direct path at t=0.

    Room sizes 3-10 m x 3-8 m x 2.5-4 m, RT60 uniform in [rt60_min, rt60_max] seconds,
    source and microphone at random positions at least 0.5 m from the walls.
    """
    from asr_trainer.data.synth.engines import require_module

    require_module("pyroomacoustics", "pyroomacoustics")
    import pyroomacoustics as pra

    rng = random.Random(seed)
    rirs = []
    for _ in range(num):
        dims = [rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.5, 4)]
        rt60 = rng.uniform(rt60_min, rt60_max)
        absorption, max_order = pra.inverse_sabine(rt60, dims)
        room = pra.ShoeBox(
            dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 20)
        )
        room.add_source([rng.uniform(0.5, d - 0.5) for d in dims])
        room.add_microphone([rng.uniform(0.5, d - 0.5) for d in dims])
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float64)
        rir = rir[int(np.argmax(np.abs(rir))):][: int(max_seconds * SAMPLE_RATE)]
        rirs.append((rir / np.max(np.abs(rir))).astype(np.float32))
    return rirs


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir``; same length as ``speech`` and the same mean power."""
    from scipy.signal import fftconvolve

    wet = fftconvolve(speech, rir)[: speech.size].astype(np.float32)
    p_wet = power(wet)
    return wet if p_wet == 0 else wet * np.float32(np.sqrt(power(speech) / p_wet))


def noise_segment(noise: np.ndarray, length: int, rng: random.Random) -> np.ndarray:
    """A random ``length``-sample stretch of ``noise`` (tiled when it is too short)."""
    if noise.size < length:
        noise = np.tile(noise, length // noise.size + 1)
    start = rng.randrange(noise.size - length + 1)
    return noise[start : start + length]


def babble(talkers: list[np.ndarray], length: int, rng: random.Random) -> np.ndarray:
    """Sum of ``talkers`` (each at equal power, random offset, looped) over ``length`` samples."""
    out = np.zeros(length, dtype=np.float32)
    for talker in talkers:
        seg = noise_segment(talker, length, rng)
        p = power(seg)
        if p > 0:
            out += seg / np.float32(np.sqrt(p))
    return out


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with ``g`` chosen so the SNR is exactly ``snr_db``.

    ``noise`` has the length of ``speech``; a silent noise or speech is returned unchanged.
    """
    p_s, p_n = power(speech), power(noise)
    if p_s == 0 or p_n == 0:
        return speech
    gain = np.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))
    return (speech + gain * noise).astype(np.float32)


def measured_snr_db(speech: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of ``noisy`` against the clean ``speech`` it was made from, in dB."""
    return 10 * float(np.log10(power(speech) / power(noisy - speech)))
