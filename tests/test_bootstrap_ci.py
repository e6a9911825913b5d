"""Bootstrap CIs against an explicit-loop bootstrap on the same indices, and sanity cases."""

import numpy as np
import pytest

from asr_trainer.errors import UserError
from asr_trainer.report.bootstrap import relative_increase_ci, resample_indices, wer_ci


def _brute(errors, refs, base, n_resamples, seed, level=0.95):
    wers, rels = [], []
    for r in range(n_resamples):
        idx = resample_indices(len(refs), n_resamples, seed, r, r + 1)[0]
        e = sum(float(errors[i]) for i in idx)
        n = sum(float(refs[i]) for i in idx)
        b = sum(float(base[i]) for i in idx)
        wers.append(100 * e / n)
        rels.append((e / n - b / n) / (b / n) * 100 if b > 0 else np.nan)
    tail = (1 - level) / 2 * 100
    rels = np.array(rels)
    rels = rels[np.isfinite(rels)]
    return np.percentile(wers, [tail, 100 - tail]), np.percentile(rels, [tail, 100 - tail])


def test_matches_brute_force_loop():
    rng = np.random.default_rng(7)
    refs = rng.integers(1, 12, size=9)
    base = rng.integers(0, 4, size=9)
    sys_ = rng.integers(0, 5, size=9)
    wer_bf, rel_bf = _brute(sys_, refs, base, 300, seed=3)
    ci = wer_ci(sys_, refs, n_resamples=300, seed=3)
    assert [ci.low, ci.high] == pytest.approx(list(wer_bf), rel=1e-12)
    assert ci.estimate == pytest.approx(100 * sys_.sum() / refs.sum())
    rel = relative_increase_ci(sys_, base, refs, n_resamples=300, seed=3)
    assert [rel.low, rel.high] == pytest.approx(list(rel_bf), rel=1e-12)
    assert rel.estimate == pytest.approx((sys_.sum() - base.sum()) / base.sum() * 100)


def test_chunking_does_not_change_indices():
    a = resample_indices(5, 10, seed=1)
    b = np.concatenate([resample_indices(5, 10, 1, 0, 4), resample_indices(5, 10, 1, 4, 10)])
    assert (a == b).all() and a.min() >= 0 and a.max() <= 4


def test_identical_systems_give_zero_interval():
    rng = np.random.default_rng(0)
    refs, errs = rng.integers(3, 20, size=50), rng.integers(0, 6, size=50)
    rel = relative_increase_ci(errs, errs, refs, n_resamples=200, seed=1)
    assert rel.estimate == 0 and rel.low == 0 and rel.high == 0


def test_interval_contains_estimate_and_narrows_with_data():
    rng = np.random.default_rng(1)
    small = wer_ci(rng.integers(0, 3, 20), rng.integers(5, 10, 20), 500, seed=0)
    big = wer_ci(rng.integers(0, 3, 2000), rng.integers(5, 10, 2000), 500, seed=0)
    assert small.low <= small.estimate <= small.high
    assert (big.high - big.low) < (small.high - small.low)


def test_paired_is_tighter_than_unpaired_spread():
    rng = np.random.default_rng(2)
    refs = rng.integers(5, 30, size=400)
    base = rng.binomial(refs, rng.uniform(0.02, 0.4, size=400))  # utterance difficulty varies
    sys_ = base + rng.integers(0, 2, size=400)
    rel = relative_increase_ci(sys_, base, refs, n_resamples=400, seed=0)
    wb, ws = wer_ci(base, refs, 400, seed=0), wer_ci(sys_, refs, 400, seed=0)
    unpaired_low = (ws.low - wb.high) / wb.estimate * 100
    assert rel.low > 0 > unpaired_low  # pairing detects a change the unpaired CIs cannot


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match="equal length"):
        wer_ci(np.array([1, 2]), np.array([3]))
    with pytest.raises(UserError, match="no words"):
        wer_ci(np.array([0]), np.array([0]))
    with pytest.raises(UserError, match="baseline makes no errors"):
        relative_increase_ci(np.array([1]), np.array([0]), np.array([3]))
