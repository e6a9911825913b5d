"""The GPU GTC round's Triton kernels: threshold, selection of the sent elements, Strom encoding, and
decoding with aggregation.

Kernel 1, one pass over the residual in blocks of ``BLOCK`` elements: ``r += g``; ``|r| >= tau``
is sent and ``r -= tau`` (``r += tau`` when negative). The same float32 operations as the torch
path and the CPU loop (an add, a compare, a subtract: nothing to contract or reorder), so the same
bits (tested on a GPU in ``tests/test_cuda.py``). The same pass numbers each block's sent elements
in order (a cumulative sum over the block), writes them packed at the front of the block's slice
of a scratch vector (``offset << 1 | negative``, int32) and writes the block's count. A cumulative
sum of the counts places each block's entries (one host read: the total, which sizes the outputs).
Kernel 2, one warp per block, copies the block's packed entries there as int64 indices and signs,
``GATHER_LANES`` at a time, so the indices come out sorted, as ``torch.nonzero`` would give them;
kernel 3 writes them instead as the Strom payload itself (header included), the bytes the CPU codec
writes. Kernel 4 decodes a Strom payload and adds its +/-tau entries into the aggregate, reading the
header on the device: a round with Strom messages reads back two numbers (the sent count and, after
the aggregate, two error flags) and launches about eight kernels.

Memory traffic per element: read r and g, write r (12 bytes), plus 4 bytes written and read per
sent element; against about 26 for the separate torch operations and 17 for one fused threshold
writing a code byte followed by ``torch.nonzero`` (a counting pass, a select pass, a gather).

Used by :mod:`asr_trainer.sync.gtc_torch` for contiguous float32 CUDA vectors when Triton is
installed (it comes with CUDA builds of torch); otherwise the torch operations run. Under
``TRITON_INTERPRET=1`` the kernels also run on CPU tensors (a test does).
"""

from __future__ import annotations

import os
import struct
from functools import cached_property
from typing import Sequence

import torch

from asr_trainer.sync import codec_torch
from asr_trainer.sync.codec import HEADER_BYTES, KIND_NAMES, STROM
from asr_trainer.sync.codec_torch import TorchMessage

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU builds of torch come without Triton
    triton = None

BLOCK = 2048  # elements per program (benchmarks/gtc_gpu_profile.py sweeps it and NUM_WARPS)
NUM_WARPS = 4  # warps per program
GATHER_LANES = 128  # sent elements a program of kernels 2 and 3 copies per iteration (one warp)
ADD_LANES = 1024  # payload words a program of kernel 4 decodes and adds


def interpreted() -> bool:
    """Whether Triton runs its kernels in the interpreter (``TRITON_INTERPRET=1``), on any device."""
    return triton is not None and os.environ.get("TRITON_INTERPRET") == "1"


def available(residual: torch.Tensor, contribution: torch.Tensor | None) -> bool:
    """Whether the kernels take these vectors: Triton present, contiguous float32 on one CUDA device."""
    tensors = [residual] + ([contribution] if contribution is not None else [])
    return triton is not None and all(
        t.is_cuda and t.dtype == torch.float32 and t.is_contiguous() and t.device == residual.device for t in tensors)


def select(residual: torch.Tensor, contribution: torch.Tensor | None, tau: float) -> "Selection":
    """``residual += contribution`` (skipped when None) then threshold at ``tau`` (float32-rounded), in
    place: kernel 1, then one host read (the sent count)."""
    packed, counts = threshold_packed(residual, contribution, tau)
    return Selection(packed, counts, tau, residual.numel())


def threshold(residual: torch.Tensor, contribution: torch.Tensor | None,
              tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`select`'s sent elements as indices int64 (k,), sorted, and negative bool (k,)."""
    msg = select(residual, contribution, tau).message
    return msg.indices, msg.negative


def threshold_packed(residual: torch.Tensor, contribution: torch.Tensor | None,
                     tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel 1. Returns the sent elements packed at the front of their blocks, int32 (n,): the
    ``j``-th sent element of block ``b`` at ``b * BLOCK + j`` as ``offset_in_block << 1 | negative``
    (the rest of each block unwritten), and the count sent per block, int32 (ceil(n / BLOCK),)."""
    n = residual.numel()
    blocks = triton.cdiv(n, BLOCK)  # read at call time: the benchmark sweeps BLOCK
    packed = torch.empty(n, dtype=torch.int32, device=residual.device)  # cached by the allocator: no traffic
    counts = torch.empty(blocks, dtype=torch.int32, device=residual.device)
    if n:
        g = contribution if contribution is not None else residual
        _threshold_kernel[(blocks,)](residual, g, packed, counts, n, tau, HAS_G=contribution is not None,
                                     BLOCK=BLOCK, num_warps=NUM_WARPS)
    return packed, counts


class Selection:
    """One worker's sent elements as kernel 1 left them on the device (:func:`threshold_packed`), with
    ``ends`` int64 (blocks,), the cumulative sent count per block, and ``count`` (k) read on the host.

    Encoded straight to a Strom payload by :func:`strom_payload`; ``message`` (kernel 2, run on first
    use) gives the sorted indices and signs as a :class:`TorchMessage`, which the other encodings take.
    Has a message's ``count``, ``tau``, ``numel``, ``indices``, ``negative`` and ``values()``.
    """

    def __init__(self, packed: torch.Tensor, counts: torch.Tensor, tau: float, numel: int) -> None:
        self.packed, self.counts, self.tau, self.numel = packed, counts, tau, numel
        self.ends = torch.cumsum(counts, 0, dtype=torch.int64)
        self.count = int(self.ends[-1]) if self.ends.numel() else 0  # the one host read: it sizes the outputs

    @cached_property
    def message(self) -> TorchMessage:
        """Kernel 2: the indices (int64 (k,), sorted) and signs (bool (k,)); reads only the k packed entries."""
        indices = torch.empty(self.count, dtype=torch.int64, device=self.packed.device)
        negative = torch.empty(self.count, dtype=torch.uint8, device=self.packed.device)
        if self.count:
            _gather_kernel[(self.counts.numel(),)](self.packed, self.counts, self.ends, indices, negative,
                                                   BLOCK=BLOCK, LANES=GATHER_LANES, num_warps=1)
        return TorchMessage(indices, negative.view(torch.bool), self.tau, self.numel)

    @property
    def indices(self) -> torch.Tensor:
        return self.message.indices

    @property
    def negative(self) -> torch.Tensor:
        return self.message.negative

    def values(self) -> torch.Tensor:
        return self.message.values()


def strom_payload(sel: Selection) -> torch.Tensor:
    """The Strom payload of ``sel``, uint8 (HEADER_BYTES + 4k,) on its device, written by kernel 3 from
    kernel 1's packed entries: the bytes of :func:`asr_trainer.sync.codec.encode` (header, then
    ``index << 1 | negative`` as little-endian 32-bit words); no host read, one launch."""
    if sel.numel >= 2**31:
        raise ValueError("Strom's int32 encoding holds at most 2**31 elements")
    if not sel.counts.numel():  # an empty vector: the header alone
        return codec_torch.encode(sel.message, "strom")
    payload = torch.empty(HEADER_BYTES + 4 * sel.count, dtype=torch.uint8, device=sel.packed.device)
    tau_bits = struct.unpack("<i", struct.pack("<f", sel.tau))[0]
    _strom_kernel[(sel.counts.numel(),)](sel.packed, sel.counts, sel.ends, payload, tau_bits, KIND=STROM,
                                         HEADER=HEADER_BYTES, BLOCK=BLOCK, LANES=GATHER_LANES, num_warps=1)
    return payload


def add_strom(payloads: Sequence[torch.Tensor], out: torch.Tensor) -> list[torch.Tensor]:
    """``out += `` each Strom payload's +/-tau vector, one kernel per payload in the order given (each
    element one float32 addition per payload, as ``index_add_``); returns the indices each payload wrote
    (int64 (k,)). The headers are read on the device: a kind byte other than STROM or an index outside
    ``out`` is counted there and raises ValueError after the last payload (one host read of two flags);
    those entries are not added. ``out``: float32 (n,) contiguous on the payloads' device."""
    status = torch.zeros(2, dtype=torch.int32, device=out.device)  # [bad kind, index outside out]
    written = []
    for payload in payloads:
        if payload.numel() < HEADER_BYTES:
            raise ValueError("GTC payload shorter than its header")
        k = (payload.numel() - HEADER_BYTES) // 4
        indices = torch.empty(k, dtype=torch.int64, device=out.device)
        if k:
            _add_strom_kernel[(triton.cdiv(k, ADD_LANES),)](payload.contiguous(), k, out, indices, status,
                                                            out.numel(), KIND=STROM, HEADER=HEADER_BYTES,
                                                            LANES=ADD_LANES)
        written.append(indices)
    bad_kind, outside = status.tolist()
    if bad_kind:
        raise ValueError(f"GTC payload kind is not {KIND_NAMES[STROM]}, the encoding configured")
    if outside:
        raise ValueError(f"corrupt GTC payload (strom): element index outside a vector of {out.numel()}")
    return written


if triton is not None:
    @triton.jit
    def _threshold_kernel(r_ptr, g_ptr, packed_ptr, count_ptr, n, tau, HAS_G: tl.constexpr, BLOCK: tl.constexpr):
        block = tl.program_id(0)
        lane = tl.arange(0, BLOCK)
        offsets = block.to(tl.int64) * BLOCK + lane
        inside = offsets < n
        r = tl.load(r_ptr + offsets, mask=inside, other=0.0)
        if HAS_G:
            r = r + tl.load(g_ptr + offsets, mask=inside, other=0.0)
        send = (tl.abs(r) >= tau) & inside
        negative = r < 0
        r = tl.where(send, r - tl.where(negative, -tau, tau), r)
        tl.store(r_ptr + offsets, r, mask=inside)
        rank = tl.cumsum(send.to(tl.int32), axis=0) - 1  # among the block's sent elements
        tl.store(packed_ptr + block.to(tl.int64) * BLOCK + rank, (lane << 1) | negative.to(tl.int32), mask=send)
        tl.store(count_ptr + block, tl.sum(send.to(tl.int32), axis=0))

    @triton.jit
    def _gather_kernel(packed_ptr, count_ptr, end_ptr, index_ptr, negative_ptr, BLOCK: tl.constexpr,
                       LANES: tl.constexpr):
        block = tl.program_id(0)
        count = tl.load(count_ptr + block)
        first = block.to(tl.int64) * BLOCK
        start = tl.load(end_ptr + block) - count
        j0 = 0
        while j0 < count:  # one iteration per LANES sent elements of the block
            j = j0 + tl.arange(0, LANES)
            sent = j < count
            value = tl.load(packed_ptr + first + j, mask=sent, other=0)
            tl.store(index_ptr + start + j, first + (value >> 1), mask=sent)
            tl.store(negative_ptr + start + j, (value & 1).to(tl.uint8), mask=sent)
            j0 += LANES

    @triton.jit
    def _strom_kernel(packed_ptr, count_ptr, end_ptr, payload_ptr, tau_bits, KIND: tl.constexpr,
                      HEADER: tl.constexpr, BLOCK: tl.constexpr, LANES: tl.constexpr):
        block = tl.program_id(0)
        if block == 0:  # the header: the kind byte, then tau's 4 bytes, little endian
            i = tl.arange(0, 8)
            byte = tl.where(i == 0, KIND, (tau_bits >> (8 * tl.maximum(i - 1, 0))) & 0xFF)
            tl.store(payload_ptr + i, byte.to(tl.uint8), mask=i < HEADER)
        count = tl.load(count_ptr + block)
        first = block.to(tl.int64) * BLOCK
        start = tl.load(end_ptr + block) - count
        j0 = 0
        while j0 < count:
            j = j0 + tl.arange(0, LANES)
            sent = j < count
            value = tl.load(packed_ptr + first + j, mask=sent, other=0)
            code = ((first + (value >> 1)) << 1) | (value & 1)
            word = payload_ptr + HEADER + 4 * (start + j)
            for b in tl.static_range(4):
                tl.store(word + b, ((code >> (8 * b)) & 0xFF).to(tl.uint8), mask=sent)
            j0 += LANES

    @triton.jit
    def _add_strom_kernel(payload_ptr, k, out_ptr, index_ptr, status_ptr, numel, KIND: tl.constexpr,
                          HEADER: tl.constexpr, LANES: tl.constexpr):
        j = tl.program_id(0).to(tl.int64) * LANES + tl.arange(0, LANES)
        inside = j < k
        kind = tl.load(payload_ptr)
        tau_bits = tl.load(payload_ptr + 1).to(tl.int32)
        for b in tl.static_range(1, 4):
            tau_bits = tau_bits | (tl.load(payload_ptr + 1 + b).to(tl.int32) << (8 * b))
        tau = tau_bits.to(tl.float32, bitcast=True)
        word = payload_ptr + HEADER + 4 * j
        code = tl.load(word, mask=inside, other=0).to(tl.int64)
        for b in tl.static_range(1, 4):
            code = code | (tl.load(word + b, mask=inside, other=0).to(tl.int64) << (8 * b))
        index = code >> 1
        outside = inside & (index >= numel)
        add = inside & (index < numel) & (kind == KIND)
        value = tl.where((code & 1) == 1, -tau, tau)
        tl.store(out_ptr + index, tl.load(out_ptr + index, mask=add, other=0.0) + value, mask=add)
        tl.store(index_ptr + j, index, mask=inside)
        if kind != KIND:
            tl.store(status_ptr, 1)
        if tl.sum(outside.to(tl.int32), axis=0) > 0:
            tl.store(status_ptr + 1, 1)
