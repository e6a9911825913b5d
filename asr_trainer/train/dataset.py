"""Our map-style dataset: a lhotse ``CutSet`` mini-batch -> padded features and token ids.

Also the CTC feasibility filter: CTC can only align ``L`` labels with ``R``
adjacent repeats to ``T' >= L + R`` output frames, so such cuts are removed
before training and counted.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch
from lhotse import CutSet
from lhotse.dataset import SpecAugment
from lhotse.dataset.collation import collate_features

from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

Encode = Callable[[str], list[int]]


def cut_text(cut) -> str:
    """The transcript of a cut (its supervisions' texts joined by a space)."""
    return " ".join(s.text for s in cut.supervisions if s.text)


def ctc_min_frames(tokens: Sequence[int]) -> int:
    """Fewest output frames CTC needs for ``tokens``: their count plus adjacent repeats."""
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    return len(tokens) + repeats


class AsrDataset(torch.utils.data.Dataset):
    """``dataset[cuts]`` -> batch dict, for lhotse samplers with ``batch_size=None`` loaders.

    Keys: ``features`` float ``(N, T, F)`` zero-padded, ``feature_lens`` int64 ``(N,)``
    in frames (10 ms), ``tokens`` ``list[list[int]]`` (ids 1..V-1), ``cut_ids``
    ``list[str]``, ``texts`` ``list[str]``. SpecAugment (if given) is applied
    to features in training only.
    """

    def __init__(self, encode: Encode, spec_augment: SpecAugment | None = None) -> None:
        self.encode = encode
        self.spec_augment = spec_augment

    def __getitem__(self, cuts: CutSet) -> dict:
        cuts = cuts.sort_by_duration(ascending=False)
        features, feature_lens = collate_features(cuts)
        if self.spec_augment is not None:
            features = self.spec_augment(features)
        texts = [cut_text(c) for c in cuts]
        return {
            "features": features,
            "feature_lens": feature_lens.long(),
            "tokens": [self.encode(t) for t in texts],
            "cut_ids": [c.id for c in cuts],
            "texts": texts,
        }


def filter_ctc_feasible(cuts: CutSet, encode: Encode, output_frames: Callable[[int], int]) -> tuple[CutSet, int]:
    """Drop cuts CTC cannot align (too many labels for their frames) or without text.

    ``output_frames(num_frames)`` maps input frames to model output frames.
    Returns the kept cuts (eager) and how many were removed; logs the count.
    """
    kept, removed = [], 0
    for cut in cuts:
        if cut.num_frames is None:
            raise UserError(f"cut {cut.id} has no precomputed features; run the features stage first")
        tokens = encode(cut_text(cut))
        if not tokens or output_frames(cut.num_frames) < ctc_min_frames(tokens):
            removed += 1
            continue
        kept.append(cut)
    if removed:
        log.warning("removed %d of %d cuts whose labels are longer than their subsampled frames (CTC impossible) "
                    "or that have no text", removed, removed + len(kept))
    if not kept:
        raise UserError("no trainable cuts left after the CTC length filter")
    return CutSet.from_cuts(kept), removed
