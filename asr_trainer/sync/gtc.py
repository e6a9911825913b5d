"""GTC arithmetic: residual thresholding, adaptive tau and aggregation of messages.

Per worker and element (DESIGN.md section 1): ``r += g``; elements with
``|r| >= tau`` are sent as ``sign(r) * tau`` and ``r -= sign(r) * tau``.
Nothing is lost: the sum of everything sent plus ``r`` equals the sum of the inputs.

Speed: thresholding is memory-bound, so the residual is walked once from DRAM,
in blocks of ``BLOCK`` elements that stay in cache while the add, the
``|r| >= tau`` test, the index extraction and the residual update all run on
them (numpy, in place, no temporaries of the full size, one thread: torch's
second thread only stalls when the other core is busy). Same float32
arithmetic, same bits as the whole-vector formulation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from asr_trainer.sync.codec import SparseMessage
from asr_trainer.sync.config import GtcConfig

BLOCK = 1 << 17  # elements per block: 512 KiB of residual (+ as much contribution and |r| scratch)


def as_float32(x: float) -> float:
    """``x`` rounded to float32 (tau travels as float32, so every worker uses that)."""
    return float(np.float32(x))


def threshold(residual: torch.Tensor, tau: float, workspace: dict | None = None) -> SparseMessage:
    """Take the elements of ``residual`` (float32 (n,), updated in place) with ``|r| >= tau``.

    ``workspace``: a dict kept by the caller between calls, holding scratch
    buffers of one block (saves their allocation per call).
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
    indices, negative = _threshold_blocks(r, g, np.float32(tau), _scratch(workspace))
    if not indices:
        return SparseMessage(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), tau, residual.numel())
    return SparseMessage(np.concatenate(indices), np.concatenate(negative), tau, residual.numel())


def _scratch(workspace: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Scratch of one block, float32 ``|r|`` and bool mask, kept in ``workspace`` when given."""
    ws = workspace if workspace is not None else {}
    if ws.get("block_abs") is None or ws["block_abs"].size < BLOCK:
        ws["block_abs"] = np.empty(BLOCK, dtype=np.float32)
        ws["block_mask"] = np.empty(BLOCK, dtype=bool)
    return ws["block_abs"], ws["block_mask"]


def _threshold_blocks(
    r: np.ndarray, g: np.ndarray | None, tau: np.float32, scratch: tuple[np.ndarray, np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Walk ``r`` (float32 (n,), in place; ``r += g`` first when ``g`` is given) block by block.

    Returns the non-empty blocks' sent indices (int64, into ``r``) and negative flags, in order.
    """
    signed_tau = np.array([tau, -tau], dtype=np.float32)  # indexed by negative
    indices, negative = [], []
    for start in range(0, r.size, BLOCK):
        block = r[start:start + BLOCK]
        if g is not None:
            np.add(block, g[start:start + BLOCK], out=block)
        idx, neg = _threshold_block(block, tau, signed_tau, *scratch)
        if idx.size:
            indices.append(idx + start if start else idx)
            negative.append(neg)
    return indices, negative


def _threshold_block(
    block: np.ndarray, tau: np.float32, signed_tau: np.ndarray, scratch: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sent elements of one block (int64 indices into it, negative flags); updates ``block`` in place."""
    n = block.size
    np.greater_equal(np.abs(block, out=scratch[:n]), tau, out=mask[:n])
    idx = np.flatnonzero(mask[:n])
    sent = block[idx]
    negative = sent < 0
    block[idx] = sent - signed_tau[negative.view(np.uint8)]
    return idx, negative


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
    (the first, onto zeros: ``0 + v == v`` for ``v != 0``) or one
    gather-add-scatter of its k elements; only touched elements are divided
    (untouched ones stay +0.0 either way).
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
    for i, msg in enumerate(messages):
        if i == 0 and np.float32(msg.tau) != 0:
            dense[msg.indices] = msg.values()
        else:
            dense[msg.indices] += msg.values()
    if len(messages) > 1:
        touched = np.concatenate([msg.indices for msg in messages])
        dense[touched] = dense[touched] / np.float32(len(messages))
    return out
