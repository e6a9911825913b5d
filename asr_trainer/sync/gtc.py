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

from typing import Iterable, Sequence

import numpy as np
import torch
from numba.cpython.unsafe.numbers import trailing_zeros  # LLVM's cttz: one instruction

from asr_trainer.sync import gtc_torch
from asr_trainer.sync.codec import SparseMessage, decode
from asr_trainer.sync.config import GtcConfig
from asr_trainer.sync.jit import kernel

SENT_CAPACITY = 1 << 17  # sent elements the index buffers first hold (they double whenever they fill up)


def as_float32(x: float) -> float:
    """``x`` rounded to float32 (tau travels as float32, so every worker uses that)."""
    return float(np.float32(x))


def threshold(residual: torch.Tensor, tau: float, workspace: dict | None = None) -> SparseMessage:
    """Take the elements of ``residual`` (float32 (n,), updated in place) with ``|r| >= tau``.

    ``workspace``: a dict kept by the caller between calls, holding the buffers the
    sent elements are collected in. The message's arrays are views of them, valid until
    the next call with the same workspace: encode it before (the trainer does). Reused
    buffers save the growth and, above 32 MB, the fresh pages of new arrays per call.
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
    """:func:`_threshold_kernel` over all of ``r``: the sent indices (int64 (k,)) and negative flags (bool (k,)),
    views of ``workspace``'s buffers, which grow by doubling whenever they fill up."""
    indices, negative = workspace.get("sent_indices"), workspace.get("sent_negative")
    if indices is None:
        capacity = min(r.size, SENT_CAPACITY)
        indices, negative = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=bool)
    start = count = 0
    while True:
        start, count = _threshold_kernel(r, g, tau, start, indices, negative, count)
        if start == r.size:
            break
        indices, negative = _grown(indices, count), _grown(negative, count)
    workspace["sent_indices"], workspace["sent_negative"] = indices, negative
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
    """Thresholding of a CPU tensor :func:`_numpy_view` refuses, through the torch path (same bits)."""
    if residual.device.type != "cpu":
        raise TypeError(f"the CPU GTC loops take CPU tensors, not {residual.device}: use gtc_kernels.TorchKernels")
    msg = gtc_torch.accumulate_and_threshold(residual, None, tau)
    return SparseMessage(msg.indices.numpy(), msg.negative.numpy(), tau, residual.numel())


def smooth_density(mean: float | None, density: float, cfg: GtcConfig) -> float:
    """A worker's running density after a message with ``density`` (sent / numel): the exponential mean
    ``(1 - s) * mean + s * density``, ``s = cfg.tau_adapt_smoothing``, starting (``mean`` None) from
    ``cfg.target_density`` (from ``density`` when tau is fixed).

    With Adam updates every element moves by about the learning rate a step, so elements cross tau in
    waves and single messages swing between near 0 and far above the target; the mean over several
    messages is what tau should follow. Starting at the target keeps the empty messages of the LR
    warm-up from halving tau into a burst."""
    if mean is None:
        mean = density if cfg.target_density is None else cfg.target_density
    s = cfg.tau_adapt_smoothing
    return (1.0 - s) * mean + s * density


def adapt_tau(tau: float, density: float, cfg: GtcConfig) -> float:
    """Next tau of a worker whose running density (:func:`smooth_density`) is ``density``."""
    if cfg.target_density is None:
        return tau
    factor = (density / cfg.target_density) ** cfg.tau_adapt_rate if density > 0 else 0.5
    return as_float32(tau * min(max(factor, 0.5), 2.0))


def aggregate(messages: Sequence[SparseMessage], out: torch.Tensor) -> torch.Tensor:
    """Mean over ``messages`` of their +/-tau vectors, into ``out`` (float32 (n,)).

    Summed in the order given (the group's rank order), so every member gets
    the same bits as zeroing ``out``, ``index_add_`` per message, then ``div_``.
    The first message is written with the zeros around it in one sequential
    pass over ``out``; each further one is a scatter-add of its k elements
    (indices are unique within a message). Every message marks the elements
    it touched (one bit each) when there are several, and only the marked
    elements are divided, each once (untouched ones stay +0.0 either way).
    """
    return _mean_into(messages, len(messages), out)


def aggregate_payloads(payloads: Sequence[torch.Tensor], out: torch.Tensor, workspace: dict) -> torch.Tensor:
    """:func:`aggregate` of the decoded ``payloads`` (uint8, :func:`asr_trainer.sync.codec.encode`).

    Each payload is decoded into ``workspace``'s buffers (a dict the caller keeps between steps)
    and scattered before the next is decoded: no fresh index arrays per message and step.
    """
    numel = out.numel()
    return _mean_into((decode(p, numel, workspace) for p in payloads), len(payloads), out)


def _mean_into(messages: Iterable[SparseMessage], m: int, out: torch.Tensor) -> torch.Tensor:
    """:func:`aggregate` of the ``m`` messages ``messages`` yields, each read once, in order."""
    dense = _numpy_view(out)
    if dense is None:
        out.zero_()
        for msg in messages:
            out.index_add_(0, torch.from_numpy(msg.indices), torch.from_numpy(msg.values()))
        return out.div_(m)
    if m == 0:
        return out.zero_().div_(0)
    marks = np.zeros((dense.size + 63) // 64, dtype=np.uint64) if m > 1 else None  # one bit per element
    for i, msg in enumerate(messages):
        (_scatter_add if i else _expand)(dense, *msg.arrays(), np.float32(msg.tau), marks)
    if marks is not None:
        _divide_marked(dense, marks, np.float32(m))
    return out


BLOCK = 4096  # elements of ``dense`` zeroed then scattered into while in L1 cache (16 KB)


@kernel
def _expand(dense: np.ndarray, indices: np.ndarray, negative: np.ndarray, tau: np.float32,
            marks: np.ndarray | None) -> None:
    """``dense = 0; dense[indices] += where(negative, -tau, tau)`` in one pass over ``dense`` (float32
    (n,)), BLOCK elements at a time: zeroed, then its sent elements (indices int64 (k,) sorted, unique)
    written while the block is in cache; ``0 + v`` (``+0.0`` where tau is 0, as the scatter-add gives).
    Marks them in ``marks`` (see :func:`_scatter_add`)."""
    zero = np.float32(0)
    v_pos, v_neg = zero + tau, zero + -tau
    j = 0
    for start in range(0, dense.size, BLOCK):
        stop = min(dense.size, start + BLOCK)
        dense[start:stop] = zero
        while j < indices.size and indices[j] < stop:
            i = indices[j]
            dense[i] = v_neg if negative[j] else v_pos
            if marks is not None:
                marks[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
            j += 1


@kernel
def _scatter_add(dense: np.ndarray, indices: np.ndarray, negative: np.ndarray, tau: np.float32,
                 marks: np.ndarray | None) -> None:
    """``dense[indices] += where(negative, -tau, tau)``: dense float32 (n,), indices int64 (k,) unique;
    sets bit ``i`` of ``marks`` (uint64 (ceil(n/64),)) for every index ``i`` unless ``marks`` is None."""
    neg_tau = -tau
    for j in range(indices.size):
        i = indices[j]
        dense[i] += neg_tau if negative[j] else tau
        if marks is not None:
            marks[i >> 6] |= np.uint64(1) << np.uint64(i & 63)


@kernel
def _divide_marked(dense: np.ndarray, marks: np.ndarray, m: np.float32) -> None:
    """``dense[i] /= m`` for every bit ``i`` set in ``marks`` (uint64 (ceil(n/64),)); dense float32 (n,)."""
    for w in range(marks.size):
        word = marks[w]
        while word:
            dense[64 * w + trailing_zeros(word)] /= m
            word &= word - np.uint64(1)
