"""Decoding settings tuned on the dev set: the acoustic scale and the blank penalty.

A weak CTC model's posteriors are blank-heavy, so its errors are mostly deletions. The
blank penalty (nats, subtracted from every frame's blank log-probability before the
acoustic scale) makes it emit tokens more readily; division by the blank's prior does the
same thing per frame. Both settings are chosen on dev only, by coordinate search over the
grids (scale at the first penalty; then the penalty at that scale; then the scale again,
until neither moves, at most :data:`MAX_ROUNDS` rounds), and the dev WER of every setting
tried is kept. Ties go to the earlier grid value, so the search is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from asr_trainer.report.wer import Utterance, compute_wer

BLANK = 0
MAX_ROUNDS = 4

Decoder = Callable[[np.ndarray], list[str]]


@dataclass(frozen=True)
class Setting:
    """``scale``: acoustic scale (the LM weight is 1); ``blank_penalty``: nats taken off blank's log-prob."""

    scale: float = 1.0
    blank_penalty: float = 0.0

    @property
    def label(self) -> str:
        return f"scale{self.scale:g}-bp{self.blank_penalty:g}"

    def apply(self, log_probs: np.ndarray) -> np.ndarray:
        """``scale * (log_probs - blank_penalty * onehot(blank))`` for ``log_probs`` (T, V); a new array
        unless the setting is the identity."""
        out = log_probs
        if self.blank_penalty:
            out = log_probs.copy()
            out[:, BLANK] -= self.blank_penalty
        return out * self.scale if self.scale != 1.0 else out


def decode_set(decode: Decoder, posteriors: Mapping[str, np.ndarray], refs: Mapping[str, list[str]],
               setting: Setting = Setting()) -> list[Utterance]:
    """``[(cut_id, ref, hyp)]`` decoding every cut's log-probs under ``setting``."""
    return [(cid, refs[cid], decode(setting.apply(lp))) for cid, lp in posteriors.items()]


@dataclass
class Tuning:
    """The chosen setting, the dev WER of every setting tried, and the dev results at the chosen one."""

    best: Setting
    wer: dict[Setting, float]
    results: list[Utterance]


def tune(decode: Decoder, posteriors: Mapping[str, np.ndarray], refs: Mapping[str, list[str]],
         scales: Sequence[float], penalties: Sequence[float]) -> Tuning:
    """Coordinate search of (scale, blank penalty) minimising the WER of ``posteriors`` (dev only)."""
    tried: dict[Setting, tuple[float, list[Utterance]]] = {}

    def wer_of(setting: Setting) -> float:
        if setting not in tried:
            results = decode_set(decode, posteriors, refs, setting)
            tried[setting] = (compute_wer(results, replications=0).wer, results)
        return tried[setting][0]

    def best_of(candidates: list[Setting], current: Setting | None = None) -> Setting:
        """The lowest WER; on ties the current setting, then the first in grid order."""
        return min(candidates, key=lambda c: (wer_of(c), c != current))

    best = best_of([Setting(s, penalties[0]) for s in scales])
    for _ in range(MAX_ROUNDS):
        moved = best_of([Setting(best.scale, p) for p in penalties], best)
        moved = best_of([Setting(s, moved.blank_penalty) for s in scales], moved)
        if moved == best:
            break
        best = moved
    return Tuning(best, {s: w for s, (w, _) in tried.items()}, tried[best][1])
