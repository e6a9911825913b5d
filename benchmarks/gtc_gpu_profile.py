"""Where a GPU GTC round spends its time: the Triton kernels' bandwidth per launch shape,
and a profile of whole rounds (kernel time against wall time: the gap is launches and host reads).

    python benchmarks/gtc_gpu_profile.py [--numel 1e8] [--density 0.01] [--encoding strom]

Needs a CUDA device and Triton. Bandwidth counts the kernels' dense traffic (read r and g, write r:
12 bytes per element) in GB/s, best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import time

import torch

from asr_trainer.sync import gtc_triton

import gtc_codec  # benchmarks/gtc_codec.py, beside this script
from asr_trainer.sync.gtc_kernels import TorchKernels


def kernel_sweep(numel: int, tau: float, repeats: int) -> tuple[int, int]:
    """GB/s of the two Triton kernels for each (BLOCK, num_warps); returns the fastest pair.

    Both count 12 bytes per element (read r and g, write r): kernel 1 alone, and kernel 1 with the
    gather of the sent elements and the host read of k.
    """
    r, g = torch.zeros(numel, device="cuda"), torch.randn(numel, device="cuda")
    print(f"{'BLOCK':>6} {'warps':>5} {'kernel 1 GB/s':>14} {'+ gather GB/s':>14}")
    rates = {}
    for block in (1024, 2048, 4096, 8192):
        for warps in (4, 8, 16):
            gtc_triton.BLOCK, gtc_triton.NUM_WARPS = block, warps
            alone = _best_seconds(lambda: gtc_triton.threshold_packed(r, g, tau), r, repeats)
            both = _best_seconds(lambda: gtc_triton.threshold(r, g, tau), r, repeats)
            rates[block, warps] = 12 * numel / both / 1e9
            print(f"{block:6d} {warps:5d} {12 * numel / alone / 1e9:14.0f} {rates[block, warps]:14.0f}")
    return max(rates, key=rates.get)


def _best_seconds(run, residual: torch.Tensor, repeats: int) -> float:
    """Fastest of ``repeats`` synchronised calls of ``run`` (after one to compile), the residual reset before each."""
    run()
    return min(_timed(run, residual) for _ in range(repeats))


def _timed(run, residual: torch.Tensor) -> float:
    """Seconds of one synchronised call of ``run`` after the residual is reset (the reset not timed)."""
    residual.zero_()
    torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def profile_rounds(numel: int, tau: float, encoding: str, rounds: int) -> None:
    """The top CUDA kernels of ``rounds`` GTC rounds and their total against the rounds' wall time."""
    residual, grad = torch.zeros(numel, device="cuda"), torch.randn(numel, device="cuda")
    kernels, out = TorchKernels(), torch.empty(numel, device="cuda")

    def one_round() -> None:
        msg = kernels.threshold(residual, grad, tau)
        kernels.aggregate([kernels.encode(msg, encoding)], out, encoding)

    for _ in range(3):
        residual.zero_()
        one_round()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        wall = sum(_timed(one_round, residual) for _ in range(rounds))
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    kernel_ms = sum(e.device_time_total for e in events if "zero_" not in e.key) / 1e3 / rounds
    print(f"{rounds} rounds, {numel:.0e} elements, {encoding}: wall {1e3 * wall / rounds:.3f} ms per round")
    print(prof.key_averages().table(sort_by="device_time_total", row_limit=15))
    print(f"device time per round (all kernels) {kernel_ms:.3f} ms (the residual reset included)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--numel", type=float, default=1e8)
    p.add_argument("--density", type=float, default=0.01)
    p.add_argument("--encoding", default="strom", choices=["strom", "compact"])
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    numel = int(args.numel)
    probe = torch.randn(1 << 20)
    tau = float(torch.quantile(probe.abs(), 1 - args.density))
    print(f"device {torch.cuda.get_device_name()}, density {args.density:g}, tau {tau:.4f}")
    best = kernel_sweep(numel, tau, args.repeats)
    gtc_triton.BLOCK, gtc_triton.NUM_WARPS = 2048, 4
    profile_rounds(numel, tau, args.encoding, rounds=5)
    copy = gtc_codec.copy_bandwidth(numel, 2 * args.repeats + 2, "cuda")
    for block, warps in ((2048, 4), best):
        gtc_triton.BLOCK, gtc_triton.NUM_WARPS = block, warps
        for density in (0.001, 0.01, 0.1):
            for encoding in ("strom", "compact"):
                gbs, achieved = gtc_codec.codec_throughput(numel, density, encoding, args.repeats, "cuda")
                print(f"round, BLOCK {block} warps {warps}: density {achieved:.4f} {encoding:>8} {gbs:7.1f} GB/s "
                      f"= {100 * gbs / copy:.1f}% of copy ({copy:.0f} GB/s)")


if __name__ == "__main__":
    main()
