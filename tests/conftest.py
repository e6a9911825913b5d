"""Shared fixtures: tiny audio files written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

SAMPLE_RATE = 16000


def write_tone(path: Path, seconds: float, freq: float = 440.0, fmt: str | None = None) -> Path:
    """A sine tone with a little noise, 16 kHz mono."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(int(freq))
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio.astype(np.float32), SAMPLE_RATE, format=fmt)
    return path


@pytest.fixture
def tone_writer():
    return write_tone
