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
fastest of ``trials`` such loops is kept (as ``timeit`` does): the machine is
shared, and interference only ever adds time. Units: seconds, bytes.

:class:`LoopbackModel` predicts those times. On one host the "link" is the
CPU: every byte sent over loopback TCP is copied by the sender and by the
receiver, so a collective costs memory traffic spread over the cores, plus a
per-hop wake-up latency that grows when processes outnumber cores::

    hops      all_reduce 2(p-1) (ring)   all_gather p-1 (ring)   broadcast ceil(log2 p) (tree)
    traffic   all_reduce 5(p-1) B        (per process: send 2(p-1)/p B, receive the
                                          same, reduce (p-1)/p B; times p)
              all_gather p(4p-1) B       (per process: send and receive (p-1) B, torch's
                                          copy into and out of a flat p*B buffer, first touch)
              broadcast  2(p-1) B        (p-1 transfers, each copied twice)
    L = hops * alpha * max(1, p/c)       W = traffic * w / min(p, c)
    t = L + W  when p <= c;   t = max(L, W) when p > c

(c cores; when oversubscribed a waiting process leaves its core to others, so
waiting and copying overlap). alpha and w are fitted from all_reduce at one
process count and two sizes (:func:`fit_loopback_model`); everything else is
predicted. Known gap: all_reduce with p <= c processes measures about 1.3-1.6x
the model here (the 2-process ring is a serial chain of copy, reduce, copy that a
throughput model does not see), so it is reported, not validated.

Who calls it: ``benchmarks/collectives.py`` and the validation test
``tests/test_cost_model_gloo.py``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from asr_trainer.sync.launch import run_processes

OPS = ("all_reduce", "all_gather", "broadcast")
FP32_BYTES = 4


@dataclass(frozen=True)
class Timing:
    """One measured collective: ``op`` on ``world`` processes, ``size_bytes`` per rank."""

    op: str
    world: int
    size_bytes: int
    seconds: float


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


def _measure(rank: int, world: int, plan: dict) -> list[tuple[str, int, float]]:
    """(op, bytes, seconds per call) for every op and size of ``plan``, on one rank of the group."""
    rows = []
    for op in plan["ops"]:
        for size in plan["sizes"]:
            numel = max(1, size // FP32_BYTES)
            trials = [_time_loop(op, numel, world, plan["warmup"], plan["repeats"]) for _ in range(plan["trials"])]
            rows.append((op, numel * FP32_BYTES, min(trials)))
    return rows


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
    for world in world_sizes:
        rows = run_processes(_measure, world, plan, start_method="fork")[0]  # every rank holds the same maxima
        results += [Timing(op, world, size, sec) for op, size, sec in rows]
    return results


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _hops(op: str, p: int) -> int:
    return {"all_reduce": 2 * (p - 1), "all_gather": p - 1,
            "broadcast": math.ceil(math.log2(p)) if p > 1 else 0}[op]


def _traffic_bytes(op: str, p: int, nbytes: float) -> float:
    """Memory traffic of the whole collective on one host, bytes (module doc)."""
    return {"all_reduce": 5 * (p - 1), "all_gather": p * (4 * p - 1),
            "broadcast": 2 * (p - 1)}[op] * nbytes


@dataclass(frozen=True)
class LoopbackModel:
    """Gloo collectives on one host: ``alpha_s`` per hop, ``w_s_per_byte`` of traffic per core."""

    alpha_s: float
    w_s_per_byte: float
    cores: int

    def predict(self, op: str, p: int, nbytes: float) -> float:
        """Modelled seconds of ``op`` among ``p`` local processes, ``nbytes`` per rank."""
        if op not in OPS:
            raise ValueError(f"unknown collective {op!r}; known: {OPS}")
        latency = _hops(op, p) * self.alpha_s * max(1.0, p / self.cores)
        work = _traffic_bytes(op, p, nbytes) * self.w_s_per_byte / min(p, self.cores)
        return latency + work if p <= self.cores else max(latency, work)


def fit_loopback_model(small: Timing, large: Timing, cores: int) -> LoopbackModel:
    """alpha from a latency-bound all_reduce, w from a bandwidth-bound one (same p > cores)."""
    if small.op != "all_reduce" or large.op != "all_reduce" or small.world != large.world:
        raise ValueError("fit from two all_reduce timings at the same process count")
    p = small.world
    oversub = max(1.0, p / cores)
    alpha = small.seconds / (_hops("all_reduce", p) * oversub)
    w = large.seconds * min(p, cores) / _traffic_bytes("all_reduce", p, large.size_bytes)
    return LoopbackModel(alpha, w, cores)
