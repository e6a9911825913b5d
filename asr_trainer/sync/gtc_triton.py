"""The GTC threshold and the compaction of the sent elements as two Triton kernels on CUDA.

Kernel 1, one pass over the residual in blocks of ``BLOCK`` elements: ``r += g``; ``|r| >= tau``
is sent and ``r -= tau`` (``r += tau`` when negative). The same float32 operations as the torch
path and the CPU loop (an add, a compare, a subtract: nothing to contract or reorder), so the same
bits (tested on a GPU in ``tests/test_cuda.py``). The same pass numbers each block's sent elements
in order (a cumulative sum over the block), writes them packed at the front of the block's slice
of a scratch vector (``offset << 1 | negative``, int32) and writes the block's count. An exclusive
cumulative sum of the counts gives each block its first output slot (one host read: the total,
which sizes the outputs); kernel 2, one warp per block, copies the block's packed entries there as int64
indices and signs, ``GATHER_LANES`` at a time, so the indices come out sorted, as ``torch.nonzero`` would give them.

Memory traffic per element: read r and g, write r (12 bytes), plus 4 bytes written and read per
sent element; against about 26 for the separate torch operations and 17 for one fused threshold
writing a code byte followed by ``torch.nonzero`` (a counting pass, a select pass, a gather).

Used by :func:`asr_trainer.sync.gtc_torch.accumulate_and_threshold` for contiguous float32 CUDA
vectors when Triton is installed (it comes with CUDA builds of torch); otherwise the torch
operations run. Under ``TRITON_INTERPRET=1`` the kernels also run on CPU tensors (a test does).
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU builds of torch come without Triton
    triton = None

BLOCK = 2048  # elements per program (benchmarks/gtc_gpu_profile.py sweeps it and NUM_WARPS)
NUM_WARPS = 4  # warps per program
GATHER_LANES = 128  # sent elements a program of kernel 2 copies per iteration (one warp)


def interpreted() -> bool:
    """Whether Triton runs its kernels in the interpreter (``TRITON_INTERPRET=1``), on any device."""
    return triton is not None and os.environ.get("TRITON_INTERPRET") == "1"


def available(residual: torch.Tensor, contribution: torch.Tensor | None) -> bool:
    """Whether the kernels take these vectors: Triton present, contiguous float32 on one CUDA device."""
    tensors = [residual] + ([contribution] if contribution is not None else [])
    return triton is not None and all(
        t.is_cuda and t.dtype == torch.float32 and t.is_contiguous() and t.device == residual.device for t in tensors)


def threshold(residual: torch.Tensor, contribution: torch.Tensor | None,
              tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``residual += contribution`` then threshold at ``tau`` (float32-rounded), in place.

    Returns the sent elements on the residual's device: indices int64 (k,), sorted, and negative
    bool (k,). Reads one number on the host (k).
    """
    packed, counts = threshold_packed(residual, contribution, tau)
    return gather_sent(packed, counts)


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


def gather_sent(packed: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel 2: the indices (int64 (k,), sorted) and signs (bool (k,)) of the sent elements, from
    :func:`threshold_packed`'s outputs (same ``BLOCK``); reads only the ``k`` packed entries."""
    ends = torch.cumsum(counts, 0, dtype=torch.int64)
    k = int(ends[-1]) if ends.numel() else 0  # the one host read: it sizes the outputs
    indices = torch.empty(k, dtype=torch.int64, device=packed.device)
    negative = torch.empty(k, dtype=torch.uint8, device=packed.device)
    if k:
        _gather_kernel[(counts.numel(),)](packed, counts, ends - counts, indices, negative,
                                          BLOCK=BLOCK, LANES=GATHER_LANES, num_warps=1)
    return indices, negative.view(torch.bool)


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
    def _gather_kernel(packed_ptr, count_ptr, start_ptr, index_ptr, negative_ptr, BLOCK: tl.constexpr,
                       LANES: tl.constexpr):
        block = tl.program_id(0)
        count = tl.load(count_ptr + block)
        first = block.to(tl.int64) * BLOCK
        start = tl.load(start_ptr + block)
        j0 = 0
        while j0 < count:  # one iteration per LANES sent elements of the block
            j = j0 + tl.arange(0, LANES)
            sent = j < count
            value = tl.load(packed_ptr + first + j, mask=sent, other=0)
            tl.store(index_ptr + start + j, first + (value >> 1), mask=sent)
            tl.store(negative_ptr + start + j, (value & 1).to(tl.uint8), mask=sent)
            j0 += LANES
