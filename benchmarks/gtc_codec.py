"""GTC codec benchmark: throughput of threshold+encode+decode+aggregate, and bits per sent element.

    python benchmarks/gtc_codec.py                   # 1M and 10M elements
    python benchmarks/gtc_codec.py --sizes 1e6 1e7 1e8
    python benchmarks/gtc_codec.py --device cuda --sizes 1e6 1e7 1e8   # the GPU path (torch operations)

Throughput is GB/s of fp32 gradient processed (4 bytes x elements / seconds)
for one worker's full GTC round: ``r += g`` fused with the threshold
(:func:`accumulate_and_threshold`), encode, then decode and the mean of the decoded
message into a dense fp32 vector (:func:`aggregate_payloads`, which zeroes it first), as the trainer
runs them (workspaces kept between rounds).
On ``--device cuda`` the round runs the torch kernels (:class:`TorchKernels`) on the
GPU, each round ends with ``torch.cuda.synchronize()`` inside the timer, and the
copy reference is ``dst.copy_(src)`` on the GPU (GB/s of bytes copied, like on the CPU).
The residual is reset to zero before each timed round, outside the timer, so
every round sends the same message. Best of ``--repeats`` rounds, after one
warm-up (which also pays the numba kernels' first load from their on-disk
cache, or their compile on a cold cache). It is printed next to this machine's memory-copy bandwidth
(the faster of ``dst.copy_(src)`` and ``np.copyto`` of the same size, GB/s
of bytes copied, best of ``2 * repeats + 2``) measured in the same run, with torch's thread count (the
trainer's ``num_threads``, default 2). Bits per sent element compare Strom's
int32 code, the varint and bitmap bodies, the per-message ``compact`` choice,
and the entropy floor of a message with i.i.d. positions (``H(d)/d`` bits for
the index gaps plus 1 sign bit).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from asr_trainer.sync import codec
from asr_trainer.sync.gtc_kernels import CpuKernels, TorchKernels


def best_time(fn, repeats: int, setup=None, device: str = "cpu") -> float:
    """Fastest of ``repeats`` calls of ``fn`` after one warm-up; ``setup`` runs untimed before each.
    On a GPU each call is followed by a synchronisation inside the timer."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for i in range(repeats + 1):
        if setup is not None:
            setup()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        if i:
            times.append(time.perf_counter() - start)
    return min(times)


def copy_bandwidth(numel: int, repeats: int, device: str = "cpu") -> float:
    """GB/s of fp32 copied: on the CPU the faster of torch's ``copy_`` (all its threads) and numpy's
    single-thread copy; on a GPU ``copy_`` on the device."""
    src, dst = torch.randn(numel, device=device), torch.empty(numel, device=device)
    seconds = best_time(lambda: dst.copy_(src), repeats, device=device)
    if device == "cpu":
        seconds = min(seconds, best_time(lambda: np.copyto(dst.numpy(), src.numpy()), repeats))
    return 4 * numel / seconds / 1e9


def codec_throughput(numel: int, density: float, encoding: str, repeats: int,
                     device: str = "cpu") -> tuple[float, float]:
    """(GB/s of fp32 gradient, achieved density) of one full GTC round on ``device``."""
    gen = torch.Generator().manual_seed(0)
    grad = torch.randn(numel, generator=gen).to(device)
    tau = float(torch.quantile(grad[: 1 << 20].abs().cpu(), 1 - density))
    residual, out = torch.zeros(numel, device=device), torch.zeros(numel, device=device)
    kernels = CpuKernels() if device == "cpu" else TorchKernels()
    achieved = []

    def round_trip() -> None:
        msg = kernels.threshold(residual, grad, tau)
        achieved.append(msg.count / numel)
        kernels.aggregate([kernels.encode(msg, encoding)], out, encoding)

    return 4 * numel / best_time(round_trip, repeats, residual.zero_, device) / 1e9, achieved[-1]


def bits_table(numel: int = 1 << 20) -> None:
    print(f"\nbits on the wire per sent element ({numel} elements, header excluded)")
    print(f"{'density':>9} {'strom':>7} {'varint':>7} {'bitmap':>7} {'compact':>8} {'entropy':>8}")
    rng = np.random.default_rng(0)
    for d in (1e-4, 1e-3, 1e-2, 1 / 16, 0.1, 0.25, 0.5):
        k = int(numel * d)
        msg = codec.SparseMessage(np.sort(rng.choice(numel, k, replace=False)), rng.random(k) < 0.5, 1.0, numel)
        bits = {kind: codec.body_bits(msg, kind) / k for kind in (codec.STROM, codec.VARINT, codec.BITMAP)}
        compact = bits[codec.choose_kind(msg)]
        entropy = (-d * math.log2(d) - (1 - d) * math.log2(1 - d)) / d + 1
        print(f"{d:9.4g} {bits[codec.STROM]:7.2f} {bits[codec.VARINT]:7.2f} {bits[codec.BITMAP]:7.2f} "
              f"{compact:8.2f} {entropy:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--densities", type=float, nargs="+", default=[0.001, 0.01, 0.1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the trainer's num_threads)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--no-bits", action="store_true", help="skip the bits-per-element table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device} ({where})")
    print(f"{'elements':>10} {'copy GB/s':>10} {'density':>8} {'encoding':>8} {'GB/s':>7} {'% copy':>7}")
    for size in args.sizes:
        numel = int(size)
        copy = copy_bandwidth(numel, 2 * args.repeats + 2, args.device)
        for density in args.densities:
            for encoding in ("strom", "compact"):
                gbs, achieved = codec_throughput(numel, density, encoding, args.repeats, args.device)
                print(f"{numel:>10} {copy:10.2f} {achieved:8.4f} {encoding:>8} {gbs:7.2f} {100 * gbs / copy:6.1f}%")
    if not args.no_bits:
        bits_table()


if __name__ == "__main__":
    main()
