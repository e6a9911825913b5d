"""Cuts for training: reading a split's manifest, and keeping the cuts CTC can learn from.

CTC can only align ``L`` labels with ``R`` adjacent repeats to ``T' >= L + R``
output frames, so such cuts (and cuts without text) are removed before training
and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from lhotse import CutSet

from asr_trainer.data.dataset import Encode, cut_text
from asr_trainer.data.manifests import manifest_path
from asr_trainer.errors import UserError

log = logging.getLogger(__name__)


def load_cuts(cuts_dir: Path, corpus: str, split: str, lazy: bool = False) -> CutSet:
    """``<cuts_dir>/<corpus>_cuts_<split>.jsonl.gz``; a missing file is a :class:`UserError`.

    ``lazy``: read on the fly, each time the set is iterated (what the training sampler,
    lhotse's ``DynamicBucketingSampler``, is built for); else read into memory now.
    """
    path = manifest_path(Path(cuts_dir), corpus, "cuts", split)
    if not path.is_file():
        raise UserError(f"cut manifest not found: {path} (run the features stage, or check data.corpus)")
    return CutSet.from_jsonl_lazy(path) if lazy else CutSet.from_file(path).to_eager()


def mean_duration(cuts: CutSet) -> float:
    """Mean duration of ``cuts`` in seconds (one pass; 0.0 for none)."""
    total, count = 0.0, 0
    for cut in cuts:
        total, count = total + cut.duration, count + 1
    return total / count if count else 0.0


def ctc_min_frames(tokens: Sequence[int]) -> int:
    """Fewest output frames CTC needs for ``tokens``: their count plus adjacent repeats."""
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    return len(tokens) + repeats


def ctc_feasible_ids(cuts: CutSet, encode: Encode, output_frames: Callable[[int], int],
                     limit: int = 0) -> tuple[set[str], int]:
    """Ids of the cuts CTC can align (not too many labels for their frames, some text), and how many were not.

    ``output_frames(num_frames)`` maps input frames to model output frames; ``limit`` (0: all):
    only the first ``limit`` cuts are considered. One pass over ``cuts`` (lazy ones are read once).
    """
    kept, removed = set(), 0
    for i, cut in enumerate(cuts):
        if limit and i >= limit:
            break
        if cut.num_frames is None:
            raise UserError(f"cut {cut.id} has no precomputed features; run the features stage first")
        tokens = encode(cut_text(cut))
        if not tokens or output_frames(cut.num_frames) < ctc_min_frames(tokens):
            removed += 1
        else:
            kept.add(cut.id)
    if removed:
        log.warning("removed %d of %d cuts whose labels are longer than their subsampled frames (CTC impossible) "
                    "or that have no text", removed, removed + len(kept))
    if not kept:
        raise UserError("no trainable cuts left after the CTC length filter")
    return kept, removed


@dataclass(frozen=True)
class HasId:
    """``HasId(ids)(cut)``: whether ``cut.id`` is one of ``ids`` (a picklable filter, unlike a lambda)."""

    ids: frozenset[str]

    def __call__(self, cut) -> bool:
        return cut.id in self.ids


def filter_ctc_feasible(cuts: CutSet, encode: Encode, output_frames: Callable[[int], int]) -> tuple[CutSet, int]:
    """The cuts of :func:`ctc_feasible_ids` (lazy when ``cuts`` is) and how many were removed."""
    kept, removed = ctc_feasible_ids(cuts, encode, output_frames)
    return cuts.filter(HasId(frozenset(kept))), removed


@dataclass(frozen=True)
class TrainingCuts:
    """What the trainer trains and validates on.

    ``train``: lazy when read lazily (the sampler streams it); ``num_train``: its number of cuts;
    ``valid``: in memory; ``removed``: train and valid cuts the CTC filter dropped.
    """

    train: CutSet
    num_train: int
    valid: CutSet
    removed: tuple[int, int]


def trainable_cuts(train: CutSet, valid: CutSet, encode: Encode, output_frames: Callable[[int], int],
                   max_train_cuts: int = 0) -> TrainingCuts:
    """The first ``max_train_cuts`` (0: all) of ``train``, then the CTC filter on both sets."""
    kept, removed = ctc_feasible_ids(train, encode, output_frames, max_train_cuts)
    valid, valid_removed = filter_ctc_feasible(valid, encode, output_frames)
    return TrainingCuts(train.filter(HasId(frozenset(kept))), len(kept), valid, (removed, valid_removed))
