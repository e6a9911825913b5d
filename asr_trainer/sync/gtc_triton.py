"""The GTC threshold fused into one Triton kernel on CUDA: one pass over the residual instead of five.

``r += g``; ``|r| >= tau`` is sent and ``r -= tau`` (``r += tau`` when negative), and a code per
element is written: 0 (kept), 1 (sent positive), -1 (sent negative). The same float32 operations
as the torch path and the CPU loop (an add, a compare, a subtract: nothing to contract or
reorder), so the same bits (tested on a GPU in ``tests/test_cuda.py``). Memory traffic per
element: read r and g, write r and one code byte, 13 bytes, against about 26 for the separate
torch operations (add, abs, compare, gather, scatter).

Used by :func:`asr_trainer.sync.gtc_torch.accumulate_and_threshold` for contiguous float32 CUDA
vectors when Triton is installed (it comes with CUDA builds of torch); otherwise the torch operations run.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU builds of torch come without Triton
    triton = None

BLOCK = 2048  # elements per program
NUM_WARPS = 4  # warps per program (benchmarks/gtc_gpu_profile.py sweeps both)


def available(residual: torch.Tensor, contribution: torch.Tensor | None) -> bool:
    """Whether the fused kernel takes these vectors: Triton present, contiguous float32 on one CUDA device."""
    tensors = [residual] + ([contribution] if contribution is not None else [])
    return triton is not None and all(
        t.is_cuda and t.dtype == torch.float32 and t.is_contiguous() and t.device == residual.device for t in tensors)


def threshold_codes(residual: torch.Tensor, contribution: torch.Tensor | None, tau: float) -> torch.Tensor:
    """``residual += contribution`` then threshold at ``tau`` (float32-rounded), in place; returns the
    codes, int8 (n,) on the residual's device: 0 kept, 1 sent as +tau, -1 sent as -tau."""
    n = residual.numel()
    codes = torch.empty(n, dtype=torch.int8, device=residual.device)
    if n:
        grid = (triton.cdiv(n, BLOCK),)  # read at call time: the benchmark sweeps BLOCK
        g = contribution if contribution is not None else residual
        _threshold_kernel[grid](residual, g, codes, n, tau, HAS_G=contribution is not None, BLOCK=BLOCK,
                                num_warps=NUM_WARPS)
    return codes


if triton is not None:
    @triton.jit
    def _threshold_kernel(r_ptr, g_ptr, code_ptr, n, tau, HAS_G: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < n
        r = tl.load(r_ptr + offsets, mask=inside, other=0.0)
        if HAS_G:
            r = r + tl.load(g_ptr + offsets, mask=inside, other=0.0)
        send = tl.abs(r) >= tau
        negative = r < 0
        r = tl.where(send, r - tl.where(negative, -tau, tau), r)
        tl.store(r_ptr + offsets, r, mask=inside)
        code = tl.where(send, tl.where(negative, -1, 1), 0).to(tl.int8)
        tl.store(code_ptr + offsets, code, mask=inside)
