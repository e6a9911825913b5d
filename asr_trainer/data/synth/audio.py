"""Small audio helpers: the corpus sample rate, WAV reading, resampling, speed perturbation, power."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000  # Hz, every file of the corpus


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a mono (or first channel of a multi-channel) file as float32 in [-1, 1]."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio[:, 0].copy(), int(rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling of a 1-D float signal; a no-op when the rates match."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(audio, rate_out // g, rate_in // g).astype(np.float32)


def perturb_speed(audio: np.ndarray, factor: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play ``audio`` (sampled at ``rate`` Hz) ``factor`` times faster, tempo and pitch together.

    Kaldi's and lhotse's speed perturbation: the samples are read as if taken at
    ``rate * factor`` Hz and resampled to ``rate``, so 0.9 gives ~1/0.9 as many samples.
    Deterministic (polyphase filter); 1.0 is a no-op.
    """
    return resample(audio, int(round(rate * factor)), rate)


def power(audio: np.ndarray) -> float:
    """Mean power (mean of squares) of a 1-D signal; 0.0 for an empty one."""
    return float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
