"""Each TTS engine speaks; missing engines give a clear UserError."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from asr_trainer.data.synth import engines
from asr_trainer.data.synth.engines import EmptyAudioError, Voice, check_engine, synthesize
from asr_trainer.errors import UserError

TEXT = "let there be light"
VOICES = [
    Voice("espeak-ng", "en-gb-scotland+f2", 1.1, 0.9),
    Voice("flite", "kal16"),
    Voice("flite", "slt", 0.9, 1.12),
    Voice("festival", "ked_diphone", 1.1, 1.0),
    Voice("pico", "en-GB", 0.9, 1.1),
    Voice("piper", "joe", 1.1, 1.0),
]


@pytest.mark.parametrize("voice", VOICES, ids=lambda v: v.speaker_id)
def test_engine_produces_16khz_speech(voice: Voice) -> None:
    check_engine(voice.engine, (voice.base,))
    audio = synthesize(voice, TEXT)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = audio.size / 16000  # synthesize promises 16 kHz: a 4-word phrase lasts ~0.5-4 s
    assert 0.5 < seconds < 4.0
    assert np.sqrt(np.mean(audio**2)) > 0.01 and np.max(np.abs(audio)) <= 1.0


def test_rate_changes_duration_and_synthesis_is_repeatable() -> None:
    for engine, base in [("espeak-ng", "en-us+m3"), ("piper", "joe")]:
        slow = synthesize(Voice(engine, base, 1.0, 0.8), TEXT)
        fast = synthesize(Voice(engine, base, 1.0, 1.25), TEXT)
        assert slow.size > 1.15 * fast.size
        np.testing.assert_array_equal(fast, synthesize(Voice(engine, base, 1.0, 1.25), TEXT))


@pytest.mark.parametrize("engine, package", [("espeak-ng", "espeak-ng"), ("flite", "flite"), ("festival", "festival")])
def test_missing_program_names_the_package(monkeypatch, tmp_path, engine: str, package: str) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=f"apt-get install {package}"):
        check_engine(engine)


def test_missing_festival_voice_names_the_package(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(engines, "_FESTIVAL_VOICE_DIR", tmp_path)
    with pytest.raises(UserError, match="apt-get install festvox-kdlpc16k"):
        check_engine("festival", ("ked_diphone",))


@pytest.mark.parametrize("engine, package", [("pico", "py-nanotts"), ("piper", "piper-tts")])
def test_missing_python_package_names_it(monkeypatch, engine: str, package: str) -> None:
    real = importlib.util.find_spec
    hidden = {"py_nanotts", "piper"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in hidden else real(name, *a))
    with pytest.raises(UserError, match=f"pip install {package}"):
        check_engine(engine)


def test_silence_is_empty_audio(monkeypatch) -> None:
    monkeypatch.setitem(engines._SYNTH, "flite", lambda voice, text: np.zeros(16000, np.float32))
    with pytest.raises(EmptyAudioError):
        synthesize(Voice("flite", "awb"), TEXT)


def test_missing_sox_stops_prepare_before_any_work(monkeypatch, tmp_path) -> None:
    from asr_trainer.data.synth import SynthConfig, prepare_synth

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="sox not found: apt-get install sox"):
        prepare_synth(tmp_path / "out", SynthConfig())
    assert not (tmp_path / "out").exists()
