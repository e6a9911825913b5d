"""Measure gloo collectives on this machine (loopback, several processes).

The cost model (:mod:`asr_trainer.report.cost_model`) is only as good as its
latency/bandwidth parameters, so they are measured here rather than assumed:
``measure_collectives(world_sizes, sizes_bytes)`` launches ``p`` local processes
per world size (``torch.distributed`` with the gloo backend over TCP loopback),
times ``all_reduce``, ``all_gather`` and ``broadcast`` of fp32 tensors of each
size, and returns one :class:`Timing` per (op, p, size).

Timing protocol, per (op, size): ``warmup`` untimed calls, a barrier, then
``repeats`` back-to-back calls; every rank times its own loop and the slowest
rank's time divided by ``repeats`` is the figure (so a broadcast root that
returns early does not make the collective look cheaper than it is). The
median of ``trials`` such loops is kept. Units: seconds, bytes.

Who calls it: ``benchmarks/collectives.py`` and the validation test
``tests/test_cost_model_gloo.py``.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

OPS = ("all_reduce", "all_gather", "broadcast")
FP32_BYTES = 4


@dataclass(frozen=True)
class Timing:
    """One measured collective: ``op`` on ``world`` processes, ``size_bytes`` per rank."""

    op: str
    world: int
    size_bytes: int
    seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_op(op: str, tensor: torch.Tensor, gathered: list[torch.Tensor]) -> None:
    if op == "all_reduce":
        dist.all_reduce(tensor)
    elif op == "all_gather":
        dist.all_gather(gathered, tensor)
    elif op == "broadcast":
        dist.broadcast(tensor, src=0)
    else:
        raise ValueError(f"unknown collective {op!r}; known: {OPS}")


def _time_loop(op: str, numel: int, world: int, warmup: int, repeats: int) -> float:
    """Slowest rank's mean seconds per call over ``repeats`` back-to-back calls."""
    tensor = torch.ones(numel, dtype=torch.float32)
    gathered = [torch.empty(numel, dtype=torch.float32) for _ in range(world)]
    for _ in range(warmup):
        _run_op(op, tensor, gathered)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(repeats):
        _run_op(op, tensor, gathered)
    elapsed = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    return float(elapsed.item()) / repeats


def _worker(rank: int, world: int, port: int, plan: dict, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        rows = []
        for op in plan["ops"]:
            for size in plan["sizes"]:
                numel = max(1, size // FP32_BYTES)
                trials = [
                    _time_loop(op, numel, world, plan["warmup"], plan["repeats"])
                    for _ in range(plan["trials"])
                ]
                rows.append((op, numel * FP32_BYTES, statistics.median(trials)))
        if rank == 0:
            torch.save(rows, os.path.join(out_dir, f"timings-{world}.pt"))
    finally:
        dist.destroy_process_group()


def measure_collectives(
    world_sizes: Sequence[int],
    sizes_bytes: Sequence[int],
    ops: Sequence[str] = OPS,
    warmup: int = 2,
    repeats: int = 5,
    trials: int = 3,
) -> list[Timing]:
    """Time ``ops`` x ``sizes_bytes`` on each local world size (processes, gloo, loopback).

    ``sizes_bytes`` is the per-rank payload (rounded down to whole fp32 elements);
    for ``all_gather`` each rank receives ``world * size`` bytes. Returns a flat
    list of :class:`Timing`, in seconds per call.
    """
    unknown = sorted(set(ops) - set(OPS))
    if unknown or any(w < 2 for w in world_sizes):
        raise ValueError(f"ops must be in {OPS} and world sizes >= 2; got {ops}, {world_sizes}")
    plan = {"ops": list(ops), "sizes": list(sizes_bytes), "warmup": warmup,
            "repeats": repeats, "trials": trials}
    results: list[Timing] = []
    with tempfile.TemporaryDirectory() as out_dir:
        for world in world_sizes:
            mp.start_processes(_worker, args=(world, _free_port(), plan, out_dir),
                               nprocs=world, join=True, start_method="fork")
            rows = torch.load(os.path.join(out_dir, f"timings-{world}.pt"))
            results += [Timing(op, world, size, sec) for op, size, sec in rows]
    return results


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
