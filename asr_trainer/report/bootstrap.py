"""Bootstrap confidence intervals for WER and for the relative WER change of a system.

Inputs are per-utterance arrays, shape ``(n_utts,)``: ``errors`` (substitutions +
deletions + insertions of one system on each utterance) and ``ref_lens`` (words
in each reference). A resample draws ``n_utts`` utterance indices with
replacement; WER of a resample = sum(errors[idx]) / sum(ref_lens[idx]) * 100.

- :func:`wer_ci`: WER and its percentile bootstrap CI.
- :func:`relative_increase_ci`: rel = (WER_sys - WER_base) / WER_base * 100 with a
  *paired* bootstrap: each resample's indices are applied to both systems, so
  utterance difficulty cancels (Bisani & Ney, ICASSP 2004).

Both are vectorised over resamples (chunked to bound memory) and deterministic
for a given ``seed``: :func:`resample_indices` is the single source of indices.

Example::

    >>> e = np.array([1, 0, 2]); n = np.array([5, 4, 6])
    >>> ci = wer_ci(e, n, n_resamples=200, seed=0)
    >>> round(ci.estimate, 2)
    20.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr_trainer.errors import UserError

_MAX_CELLS = 4_000_000  # resamples x utterances held in memory at once


@dataclass(frozen=True)
class Interval:
    """A point estimate with a ``level`` (e.g. 0.95) bootstrap interval [low, high], percent."""

    estimate: float
    low: float
    high: float
    level: float
    n_resamples: int
    n_undefined: int = 0  # resamples where the statistic is undefined (base WER of 0)


def resample_indices(n_utts: int, n_resamples: int, seed: int, start: int = 0,
                     stop: int | None = None) -> np.ndarray:
    """Indices of resamples ``start:stop`` of ``n_resamples``, shape ``(stop-start, n_utts)``.

    Row r is the same whatever chunk it is drawn in: resample r uses its own
    generator seeded by ``(seed, r)``.
    """
    stop = n_resamples if stop is None else stop
    out = np.empty((stop - start, n_utts), dtype=np.int64)
    for row, r in enumerate(range(start, stop)):
        out[row] = np.random.default_rng([seed, r]).integers(0, n_utts, size=n_utts)
    return out


def _check(ref_lens: np.ndarray, *errors: np.ndarray) -> None:
    arrays = (ref_lens,) + errors
    if any(a.ndim != 1 or a.shape != ref_lens.shape for a in arrays):
        raise UserError(f"per-utterance arrays must be 1-D of equal length, got "
                        f"{[a.shape for a in arrays]}")
    if ref_lens.size == 0:
        raise UserError("no utterances to score")
    if any((a < 0).any() for a in arrays):
        raise UserError("error counts and reference lengths must be >= 0")
    if ref_lens.sum() <= 0:
        raise UserError("references have no words: WER is undefined")


def _resampled_sums(values: list[np.ndarray], n_resamples: int, seed: int) -> list[np.ndarray]:
    """For each array in ``values``, its sum over each resample, shape ``(n_resamples,)``."""
    n = values[0].size
    chunk = max(1, _MAX_CELLS // n)
    sums = [np.empty(n_resamples, dtype=np.float64) for _ in values]
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = resample_indices(n, n_resamples, seed, start, stop)
        for out, v in zip(sums, values):
            out[start:stop] = v[idx].sum(axis=1)
    return sums


def _interval(estimate: float, samples: np.ndarray, level: float) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        raise UserError("the statistic is undefined in every bootstrap resample")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), level, samples.size,
                    int(samples.size - finite.size))


def _validate_run(n_resamples: int, level: float) -> None:
    if n_resamples < 1 or not 0 < level < 1:
        raise UserError(f"need n_resamples >= 1 and 0 < level < 1, got {n_resamples}, {level}")


def wer_ci(errors: np.ndarray, ref_lens: np.ndarray, n_resamples: int = 1000, seed: int = 0,
           level: float = 0.95) -> Interval:
    """WER (percent) of one system with a percentile bootstrap CI over utterances."""
    errors, ref_lens = np.asarray(errors, float), np.asarray(ref_lens, float)
    _check(ref_lens, errors)
    _validate_run(n_resamples, level)
    e, n = _resampled_sums([errors, ref_lens], n_resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        wers = np.where(n > 0, 100 * e / n, np.nan)
    return _interval(100 * errors.sum() / ref_lens.sum(), wers, level)


def relative_increase_ci(errors_sys: np.ndarray, errors_base: np.ndarray, ref_lens: np.ndarray,
                         n_resamples: int = 1000, seed: int = 0,
                         level: float = 0.95) -> Interval:
    """Relative WER increase of a system over the baseline, percent, paired bootstrap CI.

    Both systems must be scored on the same utterances in the same order. Resamples
    whose baseline has no errors are undefined, dropped and counted (``n_undefined``).
    """
    es, eb = np.asarray(errors_sys, float), np.asarray(errors_base, float)
    ref_lens = np.asarray(ref_lens, float)
    _check(ref_lens, es, eb)
    _validate_run(n_resamples, level)
    if eb.sum() <= 0:
        raise UserError("the baseline makes no errors: a relative WER increase is undefined")
    s, b, n = _resampled_sums([es, eb, ref_lens], n_resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(b > 0, (s / n - b / n) / (b / n) * 100, np.nan)
    estimate = (es.sum() - eb.sum()) / eb.sum() * 100
    return _interval(estimate, rel, level)
