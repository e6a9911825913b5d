"""Shared fixtures: tiny audio files written on the fly, and the quick corpus built once per session."""

from __future__ import annotations

import subprocess
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


@pytest.fixture(scope="session")
def quick_data_root(tmp_path_factory) -> Path:
    """A data root holding the quick synthetic corpus (``synth_quick``: manifests, fbank, phone lang),
    built once per test session by ``./run.sh --profile quick --stop-stage 2`` exactly as a user
    builds it; the end-to-end tests of the main and the scaling recipe both train on it."""
    root = Path(__file__).resolve().parents[1]
    work = tmp_path_factory.mktemp("quick_corpus")
    cmd = ["bash", str(root / "run.sh"), "--profile", "quick", "--data-root", str(work / "data"),
           "--exp-root", str(work / "exp"), "--stop-stage", "2"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for sentinel in ("manifests", "fbank", "lang_phone"):
        assert (work / "data" / "synth_quick" / sentinel / ".done").is_file(), sentinel
    return work / "data"
