"""The fixed subset of the dev set that the decoding setting is tuned on.

Decoding every dev utterance under every setting tried is most of a system's decoding time; a
seeded sample of a quarter of dev ranks the settings nearly as well. The subset depends only on
the dev cut ids and the seed, not on the order the cuts are listed in, so every system of a
study (every row) is tuned on the same utterances.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def subset_size(num_utterances: int, fraction: float, min_utterances: int) -> int:
    """``max(ceil(fraction * n), min(min_utterances, n))`` of ``n`` utterances (all of a small dev set)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the tuning fraction must be in (0, 1], got {fraction}")
    if min_utterances < 0:
        raise ValueError(f"the tuning subset's minimum size must be >= 0, got {min_utterances}")
    return min(num_utterances, max(math.ceil(fraction * num_utterances), min_utterances))


def tuning_subset(cut_ids: Iterable[str], fraction: float, min_utterances: int, seed: int) -> list[str]:
    """The tuning utterances: :func:`subset_size` of the ids, drawn without replacement by numpy's
    ``default_rng(seed)`` from the ids sorted, returned sorted."""
    ids = sorted(set(cut_ids))
    size = subset_size(len(ids), fraction, min_utterances)
    chosen = np.random.default_rng(seed).choice(len(ids), size=size, replace=False)
    return [ids[i] for i in sorted(chosen.tolist())]
