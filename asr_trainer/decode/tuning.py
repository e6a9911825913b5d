"""Decoding settings tuned on dev: the acoustic scale and the blank penalty.

A weak CTC model's posteriors are blank-heavy, so its errors are mostly deletions. The
blank penalty (nats, subtracted from every frame's blank log-probability before the
acoustic scale) makes it emit tokens more readily; division by the blank's prior does the
same thing per frame. Both are chosen by :func:`tune` on dev utterances only (the driver
passes a fixed subset of dev, :mod:`asr_trainer.decode.dev_subset`): a local search of
the (scale, penalty) grid (:mod:`asr_trainer.decode.search`) from a start point, the grids
extended past an edge the search reaches, up to stated bounds. The posteriors are computed
once; a setting only transforms them (:meth:`Setting.apply`), so each point tried costs one
decoding of the subset and nothing else. The WER of every point tried is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from asr_trainer.decode.parallel import BatchDecoder
from asr_trainer.decode.search import Axis, local_search
from asr_trainer.report.wer import Utterance, compute_wer

BLANK = 0
SCALE, PENALTY = "acoustic scale", "blank penalty"


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


def decode_set(decode: BatchDecoder, posteriors: Mapping[str, np.ndarray], refs: Mapping[str, list[str]],
               setting: Setting = Setting()) -> list[Utterance]:
    """``[(cut_id, ref, hyp)]`` decoding every cut's log-probs (T, V) under ``setting``, in ``posteriors``' order."""
    ids = list(posteriors)
    hyps = decode([setting.apply(posteriors[cid]) for cid in ids])
    return [(cid, refs[cid], hyp) for cid, hyp in zip(ids, hyps)]


@dataclass
class Tuning:
    """The chosen setting; the tuning WER (percent) of every setting tried, in the order tried; the
    tuning utterances' results at the chosen one; the grids as the search extended them; and, per
    axis, where the choice sits on a bound (``"lower"``/``"upper"``), is ``"fixed"``, or None (interior)."""

    best: Setting
    wer: dict[Setting, float]
    results: list[Utterance]
    grids: dict[str, tuple[float, ...]]
    at_bound: dict[str, str | None]


def search_axes(scales: Sequence[float], penalties: Sequence[float], scale_range: Sequence[float],
                penalty_range: Sequence[float]) -> tuple[Axis, Axis]:
    """The (scale, penalty) axes: the scale grid extends geometrically, the penalty grid by its edge step."""
    return (Axis(SCALE, tuple(sorted(scales)), *scale_range, geometric=True),
            Axis(PENALTY, tuple(sorted(penalties)), *penalty_range))


def tune(decode: BatchDecoder, posteriors: Mapping[str, np.ndarray], refs: Mapping[str, list[str]],
         axes: tuple[Axis, Axis], start: Setting) -> Tuning:
    """The (scale, blank penalty) that a local search from ``start`` finds lowest in WER on ``posteriors``.

    ``posteriors``: ``{cut_id: log_probs (T, V)}`` of the tuning utterances (dev only); ``refs``: their
    reference words; ``axes``: :func:`search_axes`.
    """
    results: dict[Setting, list[Utterance]] = {}

    def wer_of(point: tuple[float, ...]) -> float:
        setting = Setting(*point)
        results[setting] = decode_set(decode, posteriors, refs, setting)
        return compute_wer(results[setting], replications=0).wer

    found = local_search(wer_of, axes, (start.scale, start.blank_penalty))
    best = Setting(*found.best)
    return Tuning(best, {Setting(*p): w for p, w in found.values.items()}, results[best],
                  {a.name: g for a, g in zip(axes, found.grids)},
                  {a.name: b for a, b in zip(axes, found.at_bound)})
