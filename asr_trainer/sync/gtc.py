"""GTC arithmetic: residual thresholding, adaptive tau and aggregation of messages.

Per worker and element (DESIGN.md section 1): ``r += g``; elements with
``|r| >= tau`` are sent as ``sign(r) * tau`` and ``r -= sign(r) * tau``.
Nothing is lost: the sum of everything sent plus ``r`` equals the sum of the inputs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from asr_trainer.sync.codec import SparseMessage
from asr_trainer.sync.config import GtcConfig


def as_float32(x: float) -> float:
    """``x`` rounded to float32 (tau travels as float32, so every worker uses that)."""
    return float(np.float32(x))


def threshold(residual: torch.Tensor, tau: float, workspace: dict | None = None) -> SparseMessage:
    """Take the elements of ``residual`` (float32 (n,), updated in place) with ``|r| >= tau``.

    ``workspace``: a dict kept by the caller between calls, holding scratch
    buffers of ``residual``'s size (saves two allocations of n elements per call).
    """
    tau = as_float32(tau)
    ws = workspace if workspace is not None else {}
    if ws.get("abs") is None or ws["abs"].shape != residual.shape:
        ws["abs"] = torch.empty_like(residual)
        ws["mask"] = torch.empty(residual.shape, dtype=torch.bool)
    mask = torch.ge(torch.abs(residual, out=ws["abs"]), tau, out=ws["mask"])
    indices = torch.from_numpy(np.flatnonzero(mask.numpy()))
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
    the same bits.
    """
    out.zero_()
    for msg in messages:
        out.index_add_(0, torch.from_numpy(msg.indices), torch.from_numpy(msg.values()))
    return out.div_(len(messages))
