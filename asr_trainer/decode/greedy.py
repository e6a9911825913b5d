"""Greedy (best-path) CTC decoding: argmax per frame, merge repeats, drop blanks.

Turning tokens into words depends on the units:

* sentencepiece pieces (``▁`` marks a word start): pieces are joined into words;
* character units with a ``|`` word separator: split on ``|``;
* anything else (e.g. phones): there are no word boundaries, so the token
  sequence itself is returned and scoring is at the token level (say so).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

BLANK = 0
SP_WORD_START = "\u2581"
WORD_SEP = "|"


def greedy_ids(log_probs: np.ndarray) -> list[int]:
    """Token ids of the best path of ``log_probs`` ``(T, V)``: repeats merged, blanks (id 0) removed."""
    best = np.asarray(log_probs).argmax(axis=-1)
    out, prev = [], BLANK
    for t in best.tolist():
        if t != prev and t != BLANK:
            out.append(t)
        prev = t
    return out


def word_mode(inventory: Sequence[str]) -> str:
    """How an inventory marks words: ``"sep"`` (``|``), ``"sp"`` (``▁`` pieces) or ``"tokens"`` (none)."""
    if WORD_SEP in inventory:
        return "sep"
    if any(t.startswith(SP_WORD_START) for t in inventory):
        return "sp"
    return "tokens"


def tokens_to_words(tokens: Sequence[str], mode: str) -> list[str]:
    """Token strings -> words for a :func:`word_mode` ``mode``; ``"tokens"`` returns them unchanged."""
    if mode == "sep":
        return "".join(t if t != WORD_SEP else " " for t in tokens).split()
    if mode == "sp":
        return "".join(tokens).replace(SP_WORD_START, " ").split()
    return list(tokens)


class GreedyDecoder:
    """Same interface as the HLG decoder: ``decode(log_probs (T, V)) -> list[str]``.

    Returns words when the units carry word boundaries (:attr:`word_level`),
    else tokens.
    """

    def __init__(self, id2token: Mapping[int, str]) -> None:
        self.id2token = dict(id2token)
        self.mode = word_mode(list(self.id2token.values()))
        self.word_level = self.mode != "tokens"

    def decode(self, log_probs: np.ndarray) -> list[str]:
        return tokens_to_words([self.id2token[i] for i in greedy_ids(log_probs)], self.mode)
