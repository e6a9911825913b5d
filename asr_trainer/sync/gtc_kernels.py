"""The GTC round's three operations on the device where the residual lives.

:class:`CpuKernels`: the compiled numba loops over numpy views of CPU float32
vectors (:mod:`asr_trainer.sync.gtc`, :mod:`asr_trainer.sync.codec`), with the
workspaces they reuse between steps. :class:`TorchKernels`: torch operations on
any device (:mod:`asr_trainer.sync.gtc_torch`), what a GPU runs: gradients,
residuals, messages and payloads stay on it. Both give the same bits on the
same inputs. :func:`kernels_for` picks one for a residual.
"""

from __future__ import annotations

from typing import Literal, Protocol, Sequence, Union

import torch

from asr_trainer.sync import codec, gtc, gtc_torch
from asr_trainer.sync.codec import SparseMessage

Message = Union[SparseMessage, gtc_torch.Message]
Encoding = Literal["strom", "compact"]


class GtcKernels(Protocol):
    """Threshold, encode and aggregate of one group's GTC round, all on one device."""

    def threshold(self, residual: torch.Tensor, contribution: torch.Tensor | None, tau: float) -> Message:
        """``residual += contribution`` (float32 (P,), skipped when None), then send ``|r| >= tau``."""

    def encode(self, msg: Message, encoding: Encoding) -> torch.Tensor:
        """The message's uint8 payload, on the residual's device."""

    def aggregate(self, payloads: Sequence[torch.Tensor], out: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        """Mean of the payloads' +/-tau vectors (rank order) into ``out`` (float32 (P,)); ``encoding``
        is the one the senders were configured with (a payload's header still names its format)."""


class CpuKernels:
    """The compiled CPU loops; keeps their buffers between steps (no fresh pages per step)."""

    def __init__(self) -> None:
        self._threshold_workspace: dict = {}
        self._decode_workspace: dict = {}

    def threshold(self, residual: torch.Tensor, contribution: torch.Tensor | None, tau: float) -> SparseMessage:
        if contribution is None:
            return gtc.threshold(residual, tau, self._threshold_workspace)
        return gtc.accumulate_and_threshold(residual, contribution, tau, self._threshold_workspace)

    def encode(self, msg: SparseMessage, encoding: Encoding) -> torch.Tensor:
        return codec.encode(msg, encoding)

    def aggregate(self, payloads: Sequence[torch.Tensor], out: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        return gtc.aggregate_payloads(payloads, out, self._decode_workspace)


class TorchKernels:
    """Torch operations on the residual's device: nothing dense crosses to the host.

    Keeps the last aggregate buffer and the elements written into it, so the next aggregate into the
    same buffer zeroes only those (the caller reads the mean and never writes into the buffer).
    """

    def __init__(self) -> None:
        self._last_out: torch.Tensor | None = None
        self._written: list[torch.Tensor] = []

    def threshold(self, residual: torch.Tensor, contribution: torch.Tensor | None, tau: float) -> gtc_torch.Message:
        return gtc_torch.accumulate_and_threshold(residual, contribution, tau)

    def encode(self, msg: gtc_torch.Message, encoding: Encoding) -> torch.Tensor:
        return gtc_torch.encode(msg, encoding)

    def aggregate(self, payloads: Sequence[torch.Tensor], out: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        stale = self._written if out is self._last_out else None
        mean, self._written = gtc_torch.aggregate_payloads(payloads, out, stale, encoding)
        self._last_out = out
        return mean


def kernels_for(residual: torch.Tensor) -> GtcKernels:
    """:class:`CpuKernels` for a contiguous float32 CPU vector (the fast CPU path), else :class:`TorchKernels`."""
    if residual.device.type == "cpu" and residual.dtype == torch.float32 and residual.is_contiguous():
        return CpuKernels()
    return TorchKernels()
