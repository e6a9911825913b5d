"""GTC arithmetic as torch operations on the residual's device (the GPU path).

The same rules and the same float32 bits as the compiled CPU loops of
:mod:`asr_trainer.sync.gtc` (tested on CPU, where this path also runs):

* threshold: ``r += g``; the elements with ``|r| >= tau`` are sent and
  ``r -= tau`` (``r += tau`` when negative), in place;
* aggregate: the mean of the messages' +/-tau vectors, summed in the order
  given: zero, one ``index_add_`` per message (indices are unique within a
  message, so each element gets one IEEE addition per message, in rank order,
  whatever order the device runs a message's additions in), then one division.
  Untouched elements stay ``+0.0`` (``0 / m``), as on the CPU.

On CUDA with Triton the threshold, the selection of the sent elements, the Strom encoding and the
Strom decoding with aggregation are kernels of :mod:`asr_trainer.sync.gtc_triton`. Nothing dense
leaves the device: the host reads only the sent count that sizes the message, and either the two error
flags of the Strom kernels or the few scalars of :mod:`asr_trainer.sync.codec_torch`.
"""

from __future__ import annotations

from typing import Literal, Sequence, Union

import torch

from asr_trainer.sync import codec_torch, gtc_triton
from asr_trainer.sync.codec_torch import TorchMessage

Message = Union[TorchMessage, gtc_triton.Selection]


def accumulate_and_threshold(residual: torch.Tensor, contribution: torch.Tensor | None, tau: float) -> Message:
    """``residual += contribution`` (both float32 (n,), same device; skipped when None), then take the
    elements with ``|residual| >= tau`` (``tau`` already float32-rounded): their indices and signs
    (on CUDA with Triton a :class:`~asr_trainer.sync.gtc_triton.Selection`, which has them on demand)."""
    if contribution is not None and contribution.shape != residual.shape:
        raise ValueError(f"contribution shape {tuple(contribution.shape)} != residual {tuple(residual.shape)}")
    if gtc_triton.available(residual, contribution):  # a fused pass on CUDA
        return gtc_triton.select(residual, contribution, tau)
    if contribution is not None:
        residual.add_(contribution)
    indices = (residual.abs() >= tau).nonzero().squeeze(1)
    sent = residual[indices]
    negative = sent < 0
    step = torch.tensor(tau, dtype=residual.dtype, device=residual.device)
    residual[indices] = sent - torch.where(negative, -step, step)
    return TorchMessage(indices, negative, tau, residual.numel())


def encode(msg: Message, encoding: Literal["strom", "compact"]) -> torch.Tensor:
    """The payload of ``msg`` (uint8, its device): a Selection written as Strom by one kernel, else
    :func:`asr_trainer.sync.codec_torch.encode`."""
    if encoding == "strom" and isinstance(msg, gtc_triton.Selection):
        return gtc_triton.strom_payload(msg)
    return codec_torch.encode(msg, encoding)


def aggregate(messages: Sequence[TorchMessage], out: torch.Tensor) -> torch.Tensor:
    """Mean over ``messages`` of their +/-tau vectors, into ``out`` (float32 (n,), the messages' device)."""
    out.zero_()
    for msg in messages:
        out.index_add_(0, msg.indices, msg.values())
    return _divide(out, len(messages))


def aggregate_payloads(payloads: Sequence[torch.Tensor], out: torch.Tensor,
                       stale: Sequence[torch.Tensor] | None = None,
                       encoding: Literal["strom", "compact"] = "compact") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`aggregate` of the decoded uint8 ``payloads`` (any GTC wire format), each decoded and added
    before the next is decoded. Returns ``out`` and the indices written (for the next call's ``stale``).

    ``encoding``: what the senders were configured with. "strom" on CUDA with Triton decodes and adds
    each payload in one kernel without reading its header on the host (a payload of another kind is
    refused with ValueError after the aggregate); otherwise each header is read to pick the decoder.

    ``stale``: when ``out`` holds a previous call's result, untouched since, the indices that call
    wrote; only those are zeroed (every other element is still +0.0), which saves a write of the
    whole vector per step. None zeroes all of ``out``.
    """
    _clear(out, stale)
    if encoding == "strom" and gtc_triton.available(out, None):
        written = gtc_triton.add_strom(payloads, out)
        return _divide(out, len(payloads), written), written
    written = []
    for payload in payloads:
        msg = codec_torch.decode(payload, out.numel())
        out.index_add_(0, msg.indices, msg.values())
        written.append(msg.indices)
    return _divide(out, len(payloads), written), written


def _clear(out: torch.Tensor, stale: Sequence[torch.Tensor] | None) -> None:
    """Zero ``out``: only the ``stale`` indices when given and fewer than 1/16 of it, else all of it."""
    if stale is None or sum(i.numel() for i in stale) * 16 > out.numel():
        out.zero_()
        return
    for indices in stale:
        out.index_fill_(0, indices, 0.0)


def _divide(out: torch.Tensor, m: int, written: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """``out /= m``, correctly rounded like the CPU loop's float32 division.

    A Python-number divisor would let the CUDA kernel multiply by a rounded ``1/m`` instead (one ulp
    off for m = 3, measured on an H100), so the divisor is a 0-dim tensor on ``out``'s device. One
    message needs no division (``x / 1 == x``). ``written``: the indices the messages wrote; when they
    are few, only those are divided (``0 / m`` is ``+0.0`` everywhere else already). The quotients
    are all read before any is written, so an element several messages wrote is divided once.
    """
    if m == 1:
        return out
    divisor = torch.tensor(float(m), dtype=out.dtype, device=out.device)
    if written is None or sum(i.numel() for i in written) * 16 > out.numel():
        return out.div_(divisor)
    touched = torch.cat(list(written))
    out[touched] = out[touched] / divisor
    return out
