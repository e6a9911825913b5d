"""Word error rate with kaldialign: recogs / errs / summary files and a bootstrap 95% CI.

Files written for a set name ``<set>`` (the decode driver uses ``<split>-<method>``):

* ``recogs-<set>.txt``: icefall format, two lines per utterance::

      <cut_id>:\tref=['A', 'B']
      <cut_id>:\thyp=['A', 'C']

* ``errs-<set>.txt``: totals, per-speaker breakdown, per-utterance alignments;
* ``wer-summary-<set>.txt``: ``settings\tWER`` table (icefall style) with the CI;
* ``wer-<set>.json``: ``{"wer", "errors", "ref_words", "ci95", "ins", "del", "sub"}``
  (WER and CI in percent).
"""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import kaldialign

from asr_trainer.errors import UserError

EPS = "*"
Utterance = tuple[str, list[str], list[str]]  # (cut id, ref words, hyp words)


@dataclass(frozen=True)
class WerResult:
    """Error counts of a set; ``wer`` and ``ci95`` in percent."""

    errors: int
    ref_words: int
    ins: int
    dels: int
    subs: int
    ci95: tuple[float, float]

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / max(self.ref_words, 1)

    def to_json(self) -> dict:
        return {"wer": self.wer, "errors": self.errors, "ref_words": self.ref_words, "ci95": list(self.ci95),
                "ins": self.ins, "del": self.dels, "sub": self.subs}


def compute_wer(results: Sequence[Utterance], replications: int = 10000, seed: int = 0) -> WerResult:
    """Totals over ``results`` and a bootstrap (Bisani & Ney, kaldialign) 95% CI of the WER."""
    if not results:
        raise UserError("no utterances to score")
    totals = defaultdict(int)
    for _, ref, hyp in results:
        for key, value in kaldialign.edit_distance(ref, hyp).items():
            if key != "err_rate":
                totals[key] += int(value)
    ci = (0.0, 0.0)
    if replications > 0 and totals["ref_len"] > 0:
        boot = kaldialign.bootstrap_wer_ci([r for _, r, _ in results], [h for _, _, h in results],
                                           replications=replications, seed=seed)
        ci = (100.0 * boot["ci95min"], 100.0 * boot["ci95max"])
    return WerResult(errors=totals["total"], ref_words=totals["ref_len"], ins=totals["ins"], dels=totals["del"],
                     subs=totals["sub"], ci95=ci)


def write_recogs(path: Path, results: Sequence[Utterance]) -> None:
    """Write ``results`` sorted by cut id in icefall's ``ref=[...]`` / ``hyp=[...]`` format."""
    with open(path, "w", encoding="utf-8") as f:
        for cut_id, ref, hyp in sorted(results):
            f.write(f"{cut_id}:\tref={list(ref)!r}\n{cut_id}:\thyp={list(hyp)!r}\n")


def read_recogs(path: Path | str) -> list[Utterance]:
    """Inverse of :func:`write_recogs`: ``[(cut_id, ref_words, hyp_words), ...]`` in file order."""
    refs: dict[str, list[str]] = {}
    out: list[Utterance] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            cut_id, rest = line.split(":\t", 1)
            kind, value = rest.split("=", 1)
            words = [str(w) for w in ast.literal_eval(value)]
        except (ValueError, SyntaxError) as e:
            raise UserError(f"{path}:{lineno}: not a recogs line ({e}): {line[:80]!r}") from None
        if kind == "ref":
            refs[cut_id] = words
        elif kind == "hyp" and cut_id in refs:
            out.append((cut_id, refs.pop(cut_id), words))
        else:
            raise UserError(f"{path}:{lineno}: expected ref= before hyp= for {cut_id}")
    return out


def alignment_line(ref: Sequence[str], hyp: Sequence[str]) -> str:
    """``A (B->C) (D->*)``: matches plain, errors as ``(ref->hyp)``, ``*`` for nothing."""
    return " ".join(r if r == h else f"({r}->{h})" for r, h in kaldialign.align(ref, hyp, EPS))


def write_errs(path: Path, results: Sequence[Utterance], result: WerResult, speakers: Mapping[str, str]) -> None:
    """Totals, a per-speaker WER table and per-utterance alignments."""
    per_spk: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    lines = []
    for cut_id, ref, hyp in sorted(results):
        d = kaldialign.edit_distance(ref, hyp)
        row = per_spk[speakers.get(cut_id, "unknown")]
        row[0] += int(d["total"])
        row[1] += int(d["ref_len"])
        row[2] += 1
        lines.append(f"{cut_id}:\t{alignment_line(ref, hyp)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"%WER = {result.wer:.2f}\n")
        f.write(f"Errors: {result.ins} insertions, {result.dels} deletions, {result.subs} substitutions, "
                f"over {result.ref_words} reference words ({result.errors} errors)\n\n")
        f.write("PER-SPEAKER WER:\nspeaker\tutts\twords\terrors\twer\n")
        for spk, (err, n, utts) in sorted(per_spk.items()):
            f.write(f"{spk}\t{utts}\t{n}\t{err}\t{100.0 * err / max(n, 1):.2f}\n")
        f.write("\nPER-UTT DETAILS: corr or (ref->hyp)\n")
        f.write("\n".join(lines) + "\n")


def write_summary(path: Path, setting: str, result: WerResult, metric: str = "WER") -> None:
    """icefall-style ``settings\tWER`` table with the 95% CI; ``metric`` is WER, or TER for token-level scoring."""
    lo, hi = result.ci95
    path.write_text(f"settings\t{metric}\tci95\n{setting}\t{result.wer:.2f}\t[{lo:.2f}, {hi:.2f}]\n", encoding="utf-8")


def score_set(out_dir: Path, set_name: str, results: Sequence[Utterance], speakers: Mapping[str, str],
              setting: str = "", replications: int = 10000, metric: str = "WER") -> WerResult:
    """Score ``results`` and write the four files for ``set_name`` into ``out_dir``.

    ``metric`` names the unit scored: "WER" for words, "TER" when the hypotheses are tokens (phones).
    """
    out_dir = Path(out_dir)
    result = compute_wer(results, replications)
    write_recogs(out_dir / f"recogs-{set_name}.txt", results)
    write_errs(out_dir / f"errs-{set_name}.txt", results, result, speakers)
    write_summary(out_dir / f"wer-summary-{set_name}.txt", setting or set_name, result, metric)
    (out_dir / f"wer-{set_name}.json").write_text(json.dumps({**result.to_json(), "metric": metric}, indent=2) + "\n")
    return result
