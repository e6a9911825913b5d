"""Interpolated modified Kneser-Ney n-gram LM (Chen & Goodman 1998), written as ARPA.

Estimation, for an order-N model over sentences padded as ``<s> w1 .. wn </s>``:

* Counts.  ``c_N`` are raw N-gram counts.  For a lower order k < N the count of
  a k-gram g is its continuation count N1+(. g), the number of distinct words
  seen before it -- except when g starts with ``<s>`` (nothing can precede it),
  where the raw count is used (as in KenLM).
* Discounts.  Per order, from the count-of-counts n1..n4 of those counts:
  ``Y = n1 / (n1 + 2 n2)``, ``D1 = 1 - 2Y n2/n1``, ``D2 = 2 - 3Y n3/n2``,
  ``D3+ = 3 - 4Y n4/n3``.  When some n_r is 0 (tiny texts) or a D_r falls
  outside (0, r], the order uses :data:`FALLBACK_DISCOUNTS`.
* Interpolation.  With ``c = c_k(h w)`` and ``S = sum_w c_k(h w)``::

      p(w | h) = max(c - D(c), 0) / S + gamma(h) p(w | h')
      gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / S

  where h' drops h's first word, N_r(h.) counts the words following h with
  count r (3+ for N3+), and the unigram level interpolates with the uniform
  distribution over the predicted vocabulary (every word but ``<s>``, so
  ``</s>`` and ``<UNK>`` included).  A history never seen at order k backs off
  with weight 1.  Every p(. | h) sums to 1.
* ARPA.  Each seen k-gram is written with log10 p(w | h) and, when it is a
  history, log10 gamma -- the back-off weight, exact for interpolated KN since
  an unseen (h, w) gets gamma(h) p(w | h').  ``<s>`` gets log10 p = -99.

Words outside the vocabulary are mapped to ``<UNK>`` before counting.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from asr_trainer.lang.symbols import BOS, EOS, UNK_WORD

log = logging.getLogger(__name__)

NGram = tuple[str, ...]
ARPA_LOG_ZERO = -99.0


@dataclass(frozen=True)
class Discounts:
    """Modified-KN discounts of one order: D1, D2 and D3+ (for counts >= 3)."""

    d1: float
    d2: float
    d3: float

    def __call__(self, count: float) -> float:
        """The discount of an n-gram seen ``count`` times (0 for count 0)."""
        if count <= 0:
            return 0.0
        return self.d1 if count == 1 else self.d2 if count == 2 else self.d3


FALLBACK_DISCOUNTS = Discounts(0.5, 1.0, 1.5)


def chen_goodman_discounts(count_of_counts: Counter) -> Discounts:
    """D1, D2, D3+ from n1..n4 (``count_of_counts[r]`` = number of n-grams with
    count r); :data:`FALLBACK_DISCOUNTS` when the estimate is undefined."""
    n1, n2, n3, n4 = (count_of_counts.get(r, 0) for r in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d = Discounts(1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not (0 < d.d1 <= 1 and 0 < d.d2 <= 2 and 0 < d.d3 <= 3):
        return FALLBACK_DISCOUNTS
    return d


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts; ``result[k]`` maps each k-gram (k = 1..order) to its count."""
    counts = [Counter() for _ in range(order + 1)]
    for words in sentences:
        padded = (BOS, *words, EOS)
        for k in range(1, order + 1):
            counts[k].update(padded[i : i + k] for i in range(len(padded) - k + 1))
    return counts


def kn_counts(raw: list[Counter], order: int) -> list[dict[NGram, int]]:
    """The counts KN uses: raw at the top order and for n-grams starting with
    ``<s>``, continuation counts N1+(. g) otherwise."""
    adjusted: list[dict[NGram, int]] = [{} for _ in range(order + 1)]
    adjusted[order] = dict(raw[order])
    for k in range(1, order):
        left = Counter(g[1:] for g in raw[k + 1])
        adjusted[k] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[k].items()}
    return adjusted


class KneserNeyLM:
    """An estimated interpolated modified-KN model; see the module docstring.

    Example::

        lm = KneserNeyLM.estimate([["A", "B"], ["A"]], order=3)
        lm.prob("B", ("<s>", "A"))   # p(B | <s> A)
        lm.write_arpa(Path("G_3_gram.arpa"))
    """

    def __init__(self, counts: list[dict[NGram, int]], vocab: set[str], order: int):
        self.order = order
        self.counts = counts
        self.predicted = sorted(vocab - {BOS} | {EOS, UNK_WORD})
        self.discounts = [FALLBACK_DISCOUNTS] + [
            chen_goodman_discounts(Counter(c for g, c in counts[k].items() if g[-1] != BOS))
            for k in range(1, order + 1)
        ]
        self._totals: list[dict[NGram, float]] = [{} for _ in range(order + 1)]
        self._gammas: list[dict[NGram, float]] = [{} for _ in range(order + 1)]
        for k in range(1, order + 1):
            self._history_stats(k)

    @classmethod
    def estimate(
        cls, sentences: Iterable[Sequence[str]], order: int = 3, vocab: Iterable[str] | None = None
    ) -> "KneserNeyLM":
        """Estimate on word sequences (no ``<s>``/``</s>``).  With ``vocab``,
        other words become ``<UNK>``; without, the vocabulary is the text's."""
        if order < 1:
            raise ValueError(f"ngram order must be >= 1, got {order}")
        keep = set(vocab) | {UNK_WORD} if vocab is not None else None
        sents = [[w if keep is None or w in keep else UNK_WORD for w in s] for s in sentences]
        words = keep if keep is not None else {w for s in sents for w in s}
        raw = count_ngrams(sents, order)
        return cls(kn_counts(raw, order), set(words), order)

    def _history_stats(self, k: int) -> None:
        """Totals S(h) and gamma(h) for every history h of the order-k counts."""
        totals: dict[NGram, float] = defaultdict(float)
        mass: dict[NGram, float] = defaultdict(float)
        disc = self.discounts[k]
        for g, c in self.counts[k].items():
            if g[-1] == BOS:
                continue
            totals[g[:-1]] += c
            mass[g[:-1]] += disc(c)
        self._totals[k] = dict(totals)
        self._gammas[k] = {h: mass[h] / s for h, s in totals.items()}

    def gamma(self, history: NGram) -> float:
        """Interpolation (= back-off) weight of ``history``; 1 when unseen."""
        return self._gammas[len(history) + 1].get(history, 1.0)

    def prob(self, word: str, history: Sequence[str] = ()) -> float:
        """p(word | history), using the last ``order - 1`` words of history."""
        history = tuple(history)
        history = history[max(0, len(history) - self.order + 1) :]
        if word == BOS:
            return 0.0
        k = len(history) + 1
        lower = 1.0 / len(self.predicted) if k == 1 else self.prob(word, history[1:])
        return self._interp(k, history + (word,), lower)

    def ngram_probs(self) -> list[dict[NGram, float]]:
        """p(w | h) of every listed k-gram (h, w), computed bottom-up; order 1
        lists the whole predicted vocabulary plus ``<s>`` (probability 0)."""
        probs: list[dict[NGram, float]] = [{}]
        uniform = 1.0 / len(self.predicted)
        unigrams = {(w,): self._interp(1, (w,), uniform) for w in self.predicted}
        unigrams[(BOS,)] = 0.0
        probs.append(unigrams)
        for k in range(2, self.order + 1):
            lower = probs[k - 1]
            probs.append({g: self._interp(k, g, lower[g[1:]]) for g in self.counts[k] if g[-1] != BOS})
        return probs

    def _interp(self, k: int, g: NGram, lower: float) -> float:
        """Order-k interpolated p(g[-1] | g[:-1]) given the lower-order ``lower``."""
        total = self._totals[k].get(g[:-1])
        if not total:
            return lower
        c = self.counts[k].get(g, 0)
        return max(c - self.discounts[k](c), 0.0) / total + self._gammas[k][g[:-1]] * lower

    def write_arpa(self, path: Path) -> None:
        """Write the model in ARPA format (log10 probabilities and back-offs)."""
        probs = self.ngram_probs()
        with open(path, "w") as f:
            f.write("\\data\\\n")
            for k in range(1, self.order + 1):
                f.write(f"ngram {k}={len(probs[k])}\n")
            for k in range(1, self.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                for g in sorted(probs[k]):
                    f.write(self._arpa_line(k, g, probs[k][g]))
            f.write("\n\\end\\\n")
        log.info("wrote %s: %s n-grams", path, "/".join(str(len(p)) for p in probs[1:]))

    def _arpa_line(self, k: int, g: NGram, p: float) -> str:
        logp = math.log10(p) if p > 0 else ARPA_LOG_ZERO
        line = f"{logp:.7f}\t{' '.join(g)}"
        if k < self.order and g in self._gammas[k + 1]:
            line += f"\t{math.log10(self._gammas[k + 1][g]):.7f}"
        return line + "\n"
