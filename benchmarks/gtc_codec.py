"""GTC codec benchmark: throughput of threshold+encode+decode+aggregate, and bits per sent element.

    python benchmarks/gtc_codec.py                   # 1M and 10M elements
    python benchmarks/gtc_codec.py --sizes 1e6 1e7 1e8

Throughput is GB/s of fp32 gradient processed (4 bytes x elements / seconds)
for one worker's full GTC round: ``r += g`` fused with the threshold
(:func:`accumulate_and_threshold`), encode, then decode and the mean of the decoded
message into a dense fp32 vector (:func:`aggregate_payloads`, which zeroes it first), as the trainer
runs them (workspaces kept between rounds).
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
from asr_trainer.sync.gtc import accumulate_and_threshold, aggregate_payloads


def best_time(fn, repeats: int, setup=None) -> float:
    """Fastest of ``repeats`` calls of ``fn`` after one warm-up; ``setup`` runs untimed before each."""
    times = []
    for i in range(repeats + 1):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        if i:
            times.append(time.perf_counter() - start)
    return min(times)


def copy_bandwidth(numel: int, repeats: int) -> float:
    """GB/s of fp32 copied: the faster of torch's ``copy_`` (all its threads) and numpy's single-thread copy."""
    src, dst = torch.randn(numel), torch.empty(numel)
    seconds = min(best_time(lambda: dst.copy_(src), repeats),
                  best_time(lambda: np.copyto(dst.numpy(), src.numpy()), repeats))
    return 4 * numel / seconds / 1e9


def codec_throughput(numel: int, density: float, encoding: str, repeats: int) -> tuple[float, float]:
    """(GB/s of fp32 gradient, achieved density) of one full GTC round."""
    gen = torch.Generator().manual_seed(0)
    grad = torch.randn(numel, generator=gen)
    tau = float(torch.quantile(grad[: 1 << 20].abs(), 1 - density))
    residual, out = torch.zeros(numel), torch.zeros(numel)
    achieved, workspace, decode_workspace = [], {}, {}

    def round_trip() -> None:
        msg = accumulate_and_threshold(residual, grad, tau, workspace)
        achieved.append(msg.indices.size / numel)
        aggregate_payloads([codec.encode(msg, encoding)], out, decode_workspace)

    return 4 * numel / best_time(round_trip, repeats, residual.zero_) / 1e9, achieved[-1]


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'elements':>10} {'copy GB/s':>10} {'density':>8} {'encoding':>8} {'GB/s':>7} {'% copy':>7}")
    for size in args.sizes:
        numel = int(size)
        copy = copy_bandwidth(numel, 2 * args.repeats + 2)
        for density in args.densities:
            for encoding in ("strom", "compact"):
                gbs, achieved = codec_throughput(numel, density, encoding, args.repeats)
                print(f"{numel:>10} {copy:10.2f} {achieved:8.4f} {encoding:>8} {gbs:7.2f} {100 * gbs / copy:6.1f}%")
    bits_table()


if __name__ == "__main__":
    main()
