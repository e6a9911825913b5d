"""Degradations hit the requested SNR; reverb keeps length and power; banks are seeded."""

from __future__ import annotations

import random

import numpy as np
import pytest

from asr_trainer.data.synth import degrade
from asr_trainer.data.synth.audio import power
from asr_trainer.data.synth.engines import Voice, synthesize


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synthesize(Voice("espeak-ng", "en-us+m3"), "and god saw the light that it was good")


@pytest.fixture(scope="module")
def noise_bank(tmp_path_factory) -> dict[str, np.ndarray]:
    paths = degrade.make_noise_bank(tmp_path_factory.mktemp("noise"), ("white", "pink", "brown", "babble"))
    assert set(paths) == {"white", "pink", "brown"}
    return degrade.load_noise_bank(paths)


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr_db", [5.0, 12.5, 20.0])
def test_coloured_noise_hits_requested_snr(speech, noise_bank, kind: str, snr_db: float) -> None:
    noise = degrade.noise_segment(noise_bank[kind], speech.size, random.Random(3))
    noisy = degrade.add_noise(speech, noise, snr_db)
    assert noisy.shape == speech.shape
    assert degrade.measured_snr_db(speech, noisy) == pytest.approx(snr_db, abs=0.05)


def test_noise_colours_differ_in_spectrum(noise_bank) -> None:
    def low_fraction(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x[:16000])) ** 2
        return float(spec[: spec.size // 8].sum() / spec.sum())

    white, pink, brown = (low_fraction(noise_bank[k]) for k in ("white", "pink", "brown"))
    assert white < pink < brown


def test_babble_hits_requested_snr(speech) -> None:
    talkers = [synthesize(Voice("flite", "awb"), t) for t in ("go in peace", "the lord is my shepherd")]
    bab = degrade.babble(talkers, speech.size, random.Random(0))
    assert bab.shape == speech.shape and power(bab) > 0
    noisy = degrade.add_noise(speech, bab, 8.0)
    assert degrade.measured_snr_db(speech, noisy) == pytest.approx(8.0, abs=0.05)


def test_rir_bank_is_seeded_and_reverb_keeps_length_and_power(speech) -> None:
    a = degrade.make_rir_bank(2, seed=5, rt60_min=0.3, rt60_max=0.6)
    b = degrade.make_rir_bank(2, seed=5, rt60_min=0.3, rt60_max=0.6)
    c = degrade.make_rir_bank(2, seed=6, rt60_min=0.3, rt60_max=0.6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0][:100], c[0][:100]) or a[0].size != c[0].size
    wet = degrade.reverberate(speech, a[0])
    assert wet.shape == speech.shape
    assert power(wet) == pytest.approx(power(speech), rel=1e-3)
    assert not np.allclose(wet, speech, atol=1e-3)
