"""Each TTS engine speaks; missing engines give a clear UserError; speed perturbation; festival's server."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from asr_trainer.data.synth import engines
from asr_trainer.data.synth.audio import perturb_speed
from asr_trainer.data.synth.engines import EmptyAudioError, SynthesisError, Voice, check_engine, synthesize
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


def test_speed_perturbation_is_deterministic_and_scales_duration() -> None:
    base = Voice("espeak-ng", "en-us+m3")
    plain = synthesize(base, TEXT)
    for speed in (0.9, 1.1):
        voice = Voice("espeak-ng", "en-us+m3", speed=speed)
        audio = synthesize(voice, TEXT)
        assert audio.dtype == np.float32
        assert abs(audio.size - plain.size / speed) <= 2  # duration / speed, at 16 kHz
        np.testing.assert_array_equal(audio, synthesize(voice, TEXT))
        np.testing.assert_array_equal(audio, perturb_speed(plain, speed))
    assert Voice("flite", "awb", 1.0, 1.12, 0.9).speaker_id == "flite_awb_p100_r112_s90"
    assert Voice("flite", "awb", 1.0, 1.12).speaker_id == "flite_awb_p100_r112"


def test_perturb_speed_of_a_tone_moves_its_pitch() -> None:
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 400 * t).astype(np.float32)
    fast = perturb_speed(tone, 1.1)
    assert abs(fast.size - 16000 / 1.1) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(fast))) * 16000 / fast.size
    assert abs(peak_hz - 440) < 3
    np.testing.assert_array_equal(perturb_speed(tone, 1.0), tone)


def test_festival_server_gives_text2wave_bytes_and_survives_failures(tmp_path) -> None:
    """The long-lived festival speaks exactly as text2wave; an error or a dead process costs one utterance."""
    voice = Voice("festival", "kal_diphone", 0.88, 1.12)
    f0 = 105.0 * voice.pitch
    params = f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {15 * voice.pitch:.1f})" \
        " (model_f0_mean 170) (model_f0_std 34)))"
    out = tmp_path / "ref.wav"
    cmd = ["text2wave", "-eval", "(voice_kal_diphone)", "-eval", f"(Parameter.set 'Duration_Stretch {1.1 / 1.12:.3f})",
           "-eval", params, "-o", str(out)]
    reference = engines._run_to_wav(cmd, out, stdin=TEXT + "\n")
    np.testing.assert_array_equal(synthesize(voice, TEXT), reference)
    with pytest.raises(SynthesisError, match="festival could not speak"):
        synthesize(Voice("festival", "no_such_diphone"), TEXT)
    np.testing.assert_array_equal(synthesize(voice, TEXT), reference)
    server = engines._festival_server()
    server._proc.kill()
    server._proc.wait()
    np.testing.assert_array_equal(synthesize(voice, TEXT), reference)


def test_study_espeak_voices_exist_and_a_typo_is_an_error() -> None:
    from asr_trainer.config import load_config
    from asr_trainer.data.synth.config import SynthConfig

    study = load_config(SynthConfig, "conf/data/synth-study.yaml")
    espeak = tuple(v.partition(":")[2] for v in study.train_voices if v.startswith("espeak-ng:"))
    assert len(espeak) >= 40
    check_engine("espeak-ng", espeak)
    for typo in ("en-us+m33", "en-uss+m3"):  # espeak-ng itself would fall back to its default voice
        with pytest.raises(UserError, match="espeak-ng voice"):
            check_engine("espeak-ng", (typo,))


def test_pico_does_not_depend_on_what_the_process_spoke_before() -> None:
    """Pico reads its malloc'd work area before writing it: the corpus must not see leftovers."""
    voice = Voice("pico", "en-GB", 1.0, 0.9)
    text = "and the lord spake unto moses saying speak unto the children of israel"
    first = synthesize(voice, text)
    for other in ("let there be light", "in the beginning god created the heaven and the earth"):
        synthesize(Voice("pico", "en-US", 1.12, 1.12), other)
        np.testing.assert_array_equal(synthesize(voice, text), first)
