"""Decoding a batch of utterances in worker processes.

kaldi-decoder's Python binding holds the GIL while it searches (measured: two threads decoding
HLG took as long as one), so utterances are decoded in forked processes instead, each with the
decoder (and its HLG) inherited from the parent, not pickled. Greedy decoding is far cheaper
than sending the posteriors to a process; callers keep it in-process (``jobs=1``).
"""

from __future__ import annotations

import multiprocessing
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np

Decoder = Callable[[np.ndarray], list[str]]          # one utterance's (T, V) log-probs -> words
BatchDecoder = Callable[[Sequence[np.ndarray]], list[list[str]]]

_decode: Decoder | None = None  # the decoder the forked workers inherit


def _decode_one(log_probs: np.ndarray) -> list[str]:
    return _decode(log_probs)


@contextmanager
def batch_decoder(decode: Decoder, jobs: int = 1) -> Iterator[BatchDecoder]:
    """A :data:`BatchDecoder` that runs ``decode`` on each utterance in ``jobs`` forked processes
    (``jobs=1``: in this process), results in input order. Open it before torch starts its threads:
    the workers are forked when it opens."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if jobs == 1:
        yield lambda batch: [decode(x) for x in batch]
        return
    global _decode
    _decode = decode
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            yield lambda batch: pool.map(_decode_one, batch, chunksize=max(1, len(batch) // (8 * jobs)))
    finally:
        _decode = None
