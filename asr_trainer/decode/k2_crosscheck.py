"""Cross-check of the k2 backend against kaldi-decoder on the same CTC log-posteriors.

The two decoders live in different Python environments (k2's PyPI wheels stop
at Python 3.9 / torch 1.13), so posteriors travel as one ``.npz`` file that
numpy reads in both (no pickles, no torch files)::

    cut_ids   (N,) str      lengths (N,) int64      log_probs (sum T_i, V) float32
    refs      (N,) str      reference words joined by spaces ("" = unknown)

Main environment (kaldi-decoder)::

    python -m asr_trainer.decode.k2_crosscheck compare --lang-dir data/lang_phone \\
        --posteriors exp/posteriors-test.npz

decodes with :class:`~asr_trainer.decode.wfst.HlgDecoder`, runs the k2 side as
a subprocess in the k2 environment (``k2-decode``, below), and prints a summary:
the share of identical one-best word sequences (pass: >= 99%) and the WER of
each backend against ``refs`` (pass: within 0.2 absolute).  Exit status 0 on
pass, 1 on fail, 2 on a UserError.

k2 environment: ``python -m asr_trainer.decode.k2_crosscheck k2-decode
--lang-dir L --posteriors P.npz --out hyps.json`` writes
``{"hyps": {cut_id: [words]}, "load_s": .., "decode_s": .., "frames": ..}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_K2_ENV = Path.home() / ".cache" / "asr_trainer" / "k2-py39"
MIN_IDENTICAL = 0.99
MAX_WER_DIFF = 0.2


def save_posteriors(path: Path, posteriors: Mapping[str, np.ndarray],
                    refs: Optional[Mapping[str, Sequence[str]]] = None) -> None:
    """Write ``{cut_id: (T_i, V) log_probs}`` (and reference words) as the cross-check ``.npz``."""
    ids = list(posteriors)
    if not ids:
        raise UserError("no posteriors to save")
    arrays = [np.asarray(posteriors[i], dtype=np.float32) for i in ids]
    if any(a.ndim != 2 or a.shape[1] != arrays[0].shape[1] for a in arrays):
        raise UserError("posteriors must all be (T, V) arrays with the same V")
    texts = [" ".join(refs[i]) if refs is not None and i in refs else "" for i in ids]
    np.savez(path, cut_ids=np.array(ids, dtype=str), lengths=np.array([a.shape[0] for a in arrays]),
             log_probs=np.concatenate(arrays), refs=np.array(texts, dtype=str))


def load_posteriors(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, List[str]]]:
    """``({cut_id: (T, V) float32}, {cut_id: reference words})`` from :func:`save_posteriors`'s file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"posteriors file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            ids, lengths, log_probs, refs = (f[k] for k in ("cut_ids", "lengths", "log_probs", "refs"))
    except (KeyError, ValueError, OSError) as e:
        raise UserError(f"{path} is not a posteriors file of save_posteriors ({e})") from None
    if int(lengths.sum()) != log_probs.shape[0] or len(ids) != len(lengths):
        raise UserError(f"{path}: lengths do not add up to the {log_probs.shape[0]} frames")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    posteriors = {str(c): log_probs[bounds[i]: bounds[i + 1]] for i, c in enumerate(ids)}
    return posteriors, {str(c): str(t).split() for c, t in zip(ids, refs)}


def k2_python(env_dir: Optional[Path] = None) -> Optional[Path]:
    """The k2 environment's python (``$ASR_K2_ENV`` or the default cache path) if it imports k2."""
    env_dir = Path(env_dir or os.environ.get("ASR_K2_ENV") or DEFAULT_K2_ENV)
    python = env_dir / "bin" / "python"
    if not python.is_file():
        return None
    ok = subprocess.run([str(python), "-c", "import k2"], capture_output=True).returncode == 0
    return python if ok else None


def run_k2_decode(python: Path, lang_dir: Path, posteriors: Path, out: Path, search_beam: float,
                  max_active: int, min_active: int, device: str = "cpu") -> dict:
    """Run ``k2-decode`` in the k2 environment; its JSON result."""
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    cmd = [str(python), "-m", "asr_trainer.decode.k2_crosscheck", "k2-decode", "--lang-dir", str(lang_dir),
           "--posteriors", str(posteriors), "--out", str(out), "--beam", str(search_beam),
           "--max-active", str(max_active), "--min-active", str(min_active), "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise UserError(f"k2 decoding failed in {python} (status {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(Path(out).read_text())


def word_errors(refs: Mapping[str, List[str]], hyps: Mapping[str, List[str]]) -> Tuple[int, int]:
    """(word errors, reference words) over the cuts with a reference."""
    import kaldialign

    errors = words = 0
    for cut_id, ref in refs.items():
        if ref:
            errors += kaldialign.edit_distance(ref, hyps[cut_id])["total"]
            words += len(ref)
    return errors, words


@dataclass(frozen=True)
class CrosscheckResult:
    """Agreement of the two backends; WERs in percent (None without references)."""

    utterances: int
    identical: int
    wer_kaldi: Optional[float]
    wer_k2: Optional[float]
    kaldi_s: float
    k2_s: float

    @property
    def identical_share(self) -> float:
        return self.identical / self.utterances

    @property
    def passed(self) -> bool:
        wer_ok = self.wer_kaldi is None or abs(self.wer_kaldi - self.wer_k2) <= MAX_WER_DIFF
        return self.identical_share >= MIN_IDENTICAL and wer_ok

    def summary(self) -> str:
        wer = ("no references" if self.wer_kaldi is None else
               f"WER kaldi-decoder {self.wer_kaldi:.2f}%, k2 {self.wer_k2:.2f}% "
               f"(diff {self.wer_k2 - self.wer_kaldi:+.2f}, allowed {MAX_WER_DIFF})")
        return (f"k2 vs kaldi-decoder: {self.identical}/{self.utterances} utterances identical "
                f"({100 * self.identical_share:.1f}%, need {100 * MIN_IDENTICAL:.0f}%); {wer}; "
                f"decode time kaldi-decoder {self.kaldi_s:.2f} s, k2 {self.k2_s:.2f} s -> "
                f"{'PASS' if self.passed else 'FAIL'}")


def crosscheck(lang_dir: Path, posteriors_file: Path, python: Optional[Path] = None, beam: float = 15.0,
               max_active: int = 7000, min_active: int = 30, device: str = "cpu") -> CrosscheckResult:
    """Decode ``posteriors_file`` with kaldi-decoder here and with k2 in its environment; compare."""
    from asr_trainer.decode.wfst import HlgDecoder

    python = python or k2_python()
    if python is None:
        raise UserError("k2 environment not built: run local/make_k2_env.sh (or set ASR_K2_ENV)")
    posteriors, refs = load_posteriors(posteriors_file)
    decoder = HlgDecoder(lang_dir, beam=beam, max_active=max_active, min_active=min_active)
    start = time.perf_counter()
    kaldi = {c: decoder.decode(lp) for c, lp in posteriors.items()}
    kaldi_s = time.perf_counter() - start
    out = Path(str(posteriors_file) + f".k2-hyps.{os.getpid()}.json")
    try:
        k2_result = run_k2_decode(python, lang_dir, posteriors_file, out, beam, max_active, min_active, device)
    finally:
        out.unlink(missing_ok=True)
    k2_hyps = k2_result["hyps"]
    identical = sum(kaldi[c] == k2_hyps[c] for c in posteriors)
    for c in [c for c in posteriors if kaldi[c] != k2_hyps[c]][:5]:
        log.info("differs: %s kaldi=%s k2=%s", c, " ".join(kaldi[c]), " ".join(k2_hyps[c]))
    wers: List[Optional[float]] = [None, None]
    if any(refs.values()):
        wers = [100 * e / max(n, 1) for e, n in (word_errors(refs, kaldi), word_errors(refs, k2_hyps))]
    return CrosscheckResult(len(posteriors), identical, wers[0], wers[1], kaldi_s, k2_result["decode_s"])


def k2_decode_file(lang_dir: Path, posteriors_file: Path, out: Path, beam: float, max_active: int,
                   min_active: int, device: str) -> None:
    """The k2-environment side: decode every cut of ``posteriors_file``, write hyps and timings as JSON."""
    from asr_trainer.decode.k2_backend import make_k2_decoder

    posteriors, _ = load_posteriors(posteriors_file)
    start = time.perf_counter()
    decoder = make_k2_decoder(lang_dir, beam=beam, max_active=max_active, min_active=min_active, device=device)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    hyps = decoder.decode_batch(list(posteriors.values()))
    decode_s = time.perf_counter() - start
    result = {"hyps": dict(zip(posteriors, hyps)), "load_s": load_s, "decode_s": decode_s,
              "frames": int(sum(x.shape[0] for x in posteriors.values())), "failed": decoder.num_failed}
    Path(out).write_text(json.dumps(result) + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m asr_trainer.decode.k2_crosscheck",
                                description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("compare", "k2-decode"):
        s = sub.add_parser(name)
        s.add_argument("--lang-dir", type=Path, required=True)
        s.add_argument("--posteriors", type=Path, required=True)
        s.add_argument("--beam", type=float, default=15.0)
        s.add_argument("--max-active", type=int, default=7000)
        s.add_argument("--min-active", type=int, default=30)
        s.add_argument("--device", default="cpu")
        if name == "compare":
            s.add_argument("--k2-env", type=Path, help="default: $ASR_K2_ENV or ~/.cache/asr_trainer/k2-py39")
        else:
            s.add_argument("--out", type=Path, required=True)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "k2-decode":
            k2_decode_file(args.lang_dir, args.posteriors, args.out, args.beam, args.max_active,
                           args.min_active, args.device)
            return 0
        python = k2_python(args.k2_env)
        if python is None:
            raise UserError("k2 environment not built: run local/make_k2_env.sh (or pass --k2-env)")
        result = crosscheck(args.lang_dir, args.posteriors, python, args.beam, args.max_active,
                            args.min_active, args.device)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
