"""Interpolated modified Kneser-Ney: hand-computed values, normalisation, ARPA."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from asr_trainer.lang.ngram import FALLBACK_DISCOUNTS, KneserNeyLM, chen_goodman_discounts

TEXT = ["A B", "A B", "B A"]


def _lm(order: int = 3) -> KneserNeyLM:
    return KneserNeyLM.estimate([s.split() for s in TEXT], order=order)


def test_discounts_follow_chen_goodman():
    n1, n2, n3, n4 = 10, 4, 2, 1
    y = n1 / (n1 + 2 * n2)
    d = chen_goodman_discounts(Counter({1: n1, 2: n2, 3: n3, 4: n4, 7: 5}))
    assert d.d1 == pytest.approx(1 - 2 * y * n2 / n1)
    assert d.d2 == pytest.approx(2 - 3 * y * n3 / n2)
    assert d.d3 == pytest.approx(3 - 4 * y * n4 / n3)
    assert d(0) == 0 and d(1) == d.d1 and d(2) == d.d2 and d(9) == d.d3


def test_discounts_fall_back_when_count_of_counts_missing():
    assert chen_goodman_discounts(Counter({1: 5, 2: 1})) == FALLBACK_DISCOUNTS


def test_probabilities_match_hand_computation():
    # Padded text: <s> A B </s> (twice), <s> B A </s>.  Tiny, so every order
    # uses the fallback discounts D1=0.5, D2=1.0, D3+=1.5.
    lm = _lm()
    assert all(d == FALLBACK_DISCOUNTS for d in lm.discounts[1:])
    d1, d2 = FALLBACK_DISCOUNTS.d1, FALLBACK_DISCOUNTS.d2
    vocab = 4  # </s> <UNK> A B  (<s> is never predicted)
    # Unigram continuation counts: A <- {<s>, B}, B <- {A, <s>}, </s> <- {B, A}.
    s0 = 2 + 2 + 2
    gamma0 = 3 * d2 / s0  # three words, each with count 2
    p_a = (2 - d2) / s0 + gamma0 / vocab
    p_b = p_a
    assert lm.prob("A") == pytest.approx(p_a)
    assert lm.prob("<UNK>") == pytest.approx(gamma0 / vocab)
    # Bigram, history A: continuation counts (A B)=1 <- {<s>}, (A </s>)=1 <- {B}.
    gamma_a = 2 * d1 / 2
    p_b_a = (1 - d1) / 2 + gamma_a * p_b
    assert lm.prob("B", ("A",)) == pytest.approx(p_b_a)
    # Bigram, history <s>: raw counts (<s> A)=2, (<s> B)=1.
    gamma_s = (d2 + d1) / 3
    assert lm.prob("A", ("<s>",)) == pytest.approx((2 - d2) / 3 + gamma_s * p_a)
    # Trigram, history (<s> A): raw count (<s> A B)=2.
    gamma_sa = d2 / 2
    assert lm.prob("B", ("<s>", "A")) == pytest.approx((2 - d2) / 2 + gamma_sa * p_b_a)
    # Unseen trigram history backs off with weight 1.
    assert lm.prob("B", ("B", "B")) == pytest.approx(lm.prob("B", ("B",)))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_every_history_sums_to_one(order):
    text = ["THE CAT SAT", "THE CAT SAT ON THE MAT", "A CAT", "THE MAT SAT", "ON A MAT A CAT SAT"]
    lm = KneserNeyLM.estimate([s.split() for s in text], order=order, vocab={"THE", "CAT", "SAT", "MAT", "ON"})
    assert "A" not in lm.predicted and "<UNK>" in lm.predicted
    histories = {g[:-1] for k in range(1, order + 1) for g in lm.counts[k]} | {("DOG",) * (order - 1)}
    for h in histories:
        total = sum(lm.prob(w, h) for w in lm.predicted)
        assert total == pytest.approx(1.0, abs=1e-9), h


def _read_arpa(path):
    probs, bows = {}, {}
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            g = tuple(fields[1].split())
            probs[g] = float(fields[0])
            if len(fields) == 3:
                bows[g] = float(fields[2])
    return probs, bows


def _arpa_prob(probs, bows, h, w):
    """log10 p(w | h) by the ARPA back-off rule."""
    if h + (w,) in probs:
        return probs[h + (w,)]
    return bows.get(h, 0.0) + _arpa_prob(probs, bows, h[1:], w)


def test_arpa_back_off_reproduces_the_model(tmp_path):
    lm = KneserNeyLM.estimate([s.split() for s in ["A B C", "A B", "B C A", "C C B A"]], order=3)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=") and text.rstrip().endswith("\\end\\")
    probs, bows = _read_arpa(path)
    assert probs[("<s>",)] == -99.0
    words = lm.predicted
    for h in [("<s>", "A"), ("A", "B"), ("C", "C"), ("B",), ("<s>",), ("A", "A"), ()]:
        for w in words:
            expected = math.log10(lm.prob(w, h))
            assert _arpa_prob(probs, bows, h, w) == pytest.approx(expected, abs=1e-6), (h, w)
