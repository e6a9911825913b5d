"""Our map-style dataset: a lhotse ``CutSet`` mini-batch -> padded features and token ids."""

from __future__ import annotations

from typing import Callable

import torch
from lhotse import CutSet
from lhotse.dataset import SpecAugment
from lhotse.dataset.collation import collate_features


Encode = Callable[[str], list[int]]


def cut_text(cut) -> str:
    """The transcript of a cut (its supervisions' texts joined by a space)."""
    return " ".join(s.text for s in cut.supervisions if s.text)


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
