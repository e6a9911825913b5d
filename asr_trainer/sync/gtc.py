"""GTC arithmetic: residual thresholding, adaptive tau and aggregation of messages.

Per worker and element (DESIGN.md section 1): ``r += g``; elements with
``|r| >= tau`` are sent as ``sign(r) * tau`` and ``r -= sign(r) * tau``.
Nothing is lost: the sum of everything sent plus ``r`` equals the sum of the inputs.

Speed: thresholding is memory-bound, so the residual is walked once from DRAM
by one compiled loop (numba, :func:`asr_trainer.sync.jit.kernel`), 64 elements
at a time: a vectorised ``r += g`` and ``|r| >= tau`` test into a bit mask, then
the sent elements only (index, sign, ``r -= sign * tau``) from its set bits. No
temporaries, one thread (torch's second thread only stalls when the other core
is busy). Same float32 arithmetic, same bits as the whole-vector formulation.
Aggregation is one compiled scatter (or scatter-add) per message.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from numba.cpython.unsafe.numbers import trailing_zeros  # LLVM's cttz: one instruction

from asr_trainer.sync.codec import SparseMessage
from asr_trainer.sync.config import GtcConfig
from asr_trainer.sync.jit import kernel

SENT_CAPACITY = 1 << 17  # sent elements the index arrays hold at least (they double whenever they fill up)


def as_float32(x: float) -> float:
    """``x`` rounded to float32 (tau travels as float32, so every worker uses that)."""
    return float(np.float32(x))


def threshold(residual: torch.Tensor, tau: float, workspace: dict | None = None) -> SparseMessage:
    """Take the elements of ``residual`` (float32 (n,), updated in place) with ``|r| >= tau``.

    ``workspace``: a dict kept by the caller between calls, holding the size of the
    arrays the sent indices are collected in (saves their growth per call).
    """
    return _threshold(residual, None, tau, workspace)


def accumulate_and_threshold(
    residual: torch.Tensor, contribution: torch.Tensor, tau: float, workspace: dict | None = None
) -> SparseMessage:
    """``residual += contribution`` (both float32 (n,)) then :func:`threshold`, in one pass over memory.

    Same bits as ``residual.add_(contribution); threshold(residual, tau, workspace)``.
    """
    if contribution.shape != residual.shape:
        raise ValueError(f"contribution shape {tuple(contribution.shape)} != residual {tuple(residual.shape)}")
    return _threshold(residual, contribution, tau, workspace)


def _threshold(
    residual: torch.Tensor, contribution: torch.Tensor | None, tau: float, workspace: dict | None
) -> SparseMessage:
    tau = as_float32(tau)
    r = _numpy_view(residual)
    g = None if contribution is None else _numpy_view(contribution)
    if r is None or (contribution is not None and g is None):
        if contribution is not None:
            residual.add_(contribution)
        return _threshold_any(residual, tau)
    indices, negative = _threshold_all(r, g, np.float32(tau), workspace if workspace is not None else {})
    return SparseMessage(indices, negative, tau, residual.numel())


def _threshold_all(
    r: np.ndarray, g: np.ndarray | None, tau: np.float32, workspace: dict
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_threshold_kernel` over all of ``r``: the sent indices (int64 (k,)) and negative flags (bool (k,)).

    They are written straight into the arrays returned (views of the first k elements: no copy).
    Those are allocated with ``workspace["capacity"]`` elements, twice the last call's k (at most
    ``r.size``, at least SENT_CAPACITY): pages never written are never touched, so the headroom
    costs address space only; when k outgrows it they grow by doubling.
    """
    capacity = min(r.size, workspace.get("capacity", SENT_CAPACITY))
    indices, negative = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=bool)
    start = count = 0
    while True:
        start, count = _threshold_kernel(r, g, tau, start, indices, negative, count)
        if start == r.size:
            break
        indices, negative = _grown(indices, count), _grown(negative, count)
    workspace["capacity"] = max(SENT_CAPACITY, 2 * count)
    return indices[:count], negative[:count]


def _grown(buffer: np.ndarray, count: int) -> np.ndarray:
    """A buffer twice the size of ``buffer`` (1-D) starting with its first ``count`` elements."""
    out = np.empty(2 * buffer.size, dtype=buffer.dtype)
    out[:count] = buffer[:count]
    return out


CHUNK = 64  # elements whose |r| >= tau tests make one uint64 bit mask


@kernel
def _threshold_kernel(
    r: np.ndarray, g: np.ndarray | None, tau: np.float32, start: int,
    indices: np.ndarray, negative: np.ndarray, count: int,
) -> tuple[int, int]:
    """From element ``start`` of ``r`` (float32 (n,), in place): ``r += g`` (float32 (n,), skipped when
    None), then each ``|r| >= tau`` is sent: its index appended to ``indices`` (int64 (cap,)) and its
    sign to ``negative`` (bool (cap,)) at ``count``, and ``r -= tau`` (``r -= -tau`` when negative).

    Works in chunks of CHUNK elements: a vectorised add and test into a bit mask, then a visit of the
    set bits only. Stops before a chunk the buffers may not have room for. Returns (elements of ``r``
    done, sent elements now in the buffers).
    """
    neg_tau = -tau
    full = r.size - (r.size - start) % CHUNK
    for i in range(start, full, CHUNK):
        if indices.size - count < CHUNK:
            return i, count
        rb = r[i:i + CHUNK]
        mask = np.uint64(0)
        if g is not None:  # loops of constant trip count without branches: unrolled and vectorised
            gb = g[i:i + CHUNK]
            for t in range(CHUNK):
                v = rb[t] + gb[t]
                rb[t] = v
                mask |= np.uint64(abs(v) >= tau) << np.uint64(t)
        else:
            for t in range(CHUNK):
                mask |= np.uint64(abs(rb[t]) >= tau) << np.uint64(t)
        while mask:  # the set bits only, lowest first
            t = trailing_zeros(mask)
            mask &= mask - np.uint64(1)
            v = rb[t]
            neg = v < 0
            indices[count] = i + t
            negative[count] = neg
            count += 1
            rb[t] = v - (neg_tau if neg else tau)
    if indices.size - count < r.size - full:
        return full, count
    for i in range(full, r.size):  # the last partial chunk
        v = r[i]
        if g is not None:
            v += g[i]
            r[i] = v
        if abs(v) >= tau:
            neg = v < 0
            indices[count] = i
            negative[count] = neg
            count += 1
            r[i] = v - (neg_tau if neg else tau)
    return r.size, count


def _numpy_view(t: torch.Tensor) -> np.ndarray | None:
    """A numpy view sharing ``t``'s memory, or None if ``t`` is not a plain contiguous float32 CPU vector."""
    if t.dtype != torch.float32 or t.device.type != "cpu" or t.requires_grad or not t.is_contiguous():
        return None
    return t.view(-1).numpy()


def _threshold_any(residual: torch.Tensor, tau: float) -> SparseMessage:
    """Reference thresholding for any tensor :func:`_numpy_view` refuses (torch ops, full-size temporaries)."""
    indices = torch.from_numpy(np.flatnonzero((residual.abs() >= tau).numpy()))
    sent = residual[indices]
    negative = sent < 0
    residual[indices] = sent - torch.where(negative, -tau, tau)
    return SparseMessage(indices.numpy(), negative.numpy(), tau, residual.numel())


def adapt_tau(tau: float, density: float, cfg: GtcConfig) -> float:
    """Next tau of a worker whose last message had ``density`` (sent / numel)."""
    if cfg.target_density is None:
        return tau
    factor = (density / cfg.target_density) ** cfg.tau_adapt_rate if density > 0 else 0.5
    return as_float32(tau * min(max(factor, 0.5), 2.0))


def aggregate(messages: Sequence[SparseMessage], out: torch.Tensor) -> torch.Tensor:
    """Mean over ``messages`` of their +/-tau vectors, into ``out`` (float32 (n,)).

    Summed in the order given (the group's rank order), so every member gets
    the same bits as ``index_add_`` per message then ``div_``. Zeroes ``out``
    first; indices are unique within a message, so each message is one scatter
    (the first, onto zeros: ``0 + v == v`` for ``v != 0``) or one scatter-add
    of its k elements; only touched elements are divided, each once (untouched
    ones stay +0.0 either way).
    """
    dense = _numpy_view(out)
    if dense is None:
        out.zero_()
        for msg in messages:
            out.index_add_(0, torch.from_numpy(msg.indices), torch.from_numpy(msg.values()))
        return out.div_(len(messages))
    dense.fill(0)  # single-threaded: no wait on a busy second core, and as fast as torch's zero_
    if not messages:
        return out.div_(0)
    arrays = [m.arrays() for m in messages]
    for i, (msg, (indices, negative)) in enumerate(zip(messages, arrays)):
        tau = np.float32(msg.tau)
        _scatter(dense, indices, negative, tau, bool(i > 0 or tau == 0))
    if len(messages) > 1:
        divided = np.zeros((dense.size + 7) // 8, dtype=np.uint8)  # one bit per element
        for indices, _ in arrays:
            _divide_once(dense, indices, np.float32(len(messages)), divided)
    return out


@kernel
def _scatter(dense: np.ndarray, indices: np.ndarray, negative: np.ndarray, tau: np.float32, add: bool) -> None:
    """``dense[indices] (+)= where(negative, -tau, tau)``: dense float32 (n,), indices int64 (k,) unique."""
    neg_tau = -tau
    for j in range(indices.size):
        v = neg_tau if negative[j] else tau
        if add:
            dense[indices[j]] += v
        else:
            dense[indices[j]] = v


@kernel
def _divide_once(dense: np.ndarray, indices: np.ndarray, m: np.float32, divided: np.ndarray) -> None:
    """``dense[i] /= m`` for each ``i`` in ``indices`` (int64 (k,)) not yet marked in ``divided``
    (uint8 (ceil(n/8),), one bit per element of ``dense``), then marks it."""
    for j in range(indices.size):
        i = indices[j]
        bit = np.uint8(1 << (i & 7))
        if not divided[i >> 3] & bit:
            divided[i >> 3] |= bit
            dense[i] = dense[i] / m
