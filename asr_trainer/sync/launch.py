"""Run a function on ``N`` local processes joined by ``torch.distributed`` (tests, small runs).

    def work(rank: int, world_size: int, steps: int) -> float: ...
    results = run_processes(work, 4, 20)      # [work(0, 4, 20), ..., work(3, 4, 20)]

Processes are spawned (fresh interpreters; ``start_method="fork"`` copies the parent
instead), use one intra-op thread each, and return their (picklable) results by
rank. They meet at a TCP store rank 0 hosts on 127.0.0.1: it binds port 0, so the
kernel picks a free port atomically (a port probed free and bound later can be
taken in between by another socket), and tells the others the port through shared
memory. The parent runs no store thread of its own: a process forked while another
thread holds a lock can hang.
"""

from __future__ import annotations

import datetime
import pickle
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run_processes(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo",
                  timeout_s: float = 120.0, start_method: str = "spawn") -> list[Any]:
    """``[fn(rank, world_size, *args) for rank in range(world_size)]``, each in its own process.

    ``fn`` must be importable (module level). A failing process raises here.
    """
    ctx = mp.get_context(start_method)
    queue, port, ready = ctx.SimpleQueue(), ctx.Value("i", 0), ctx.Event()
    rendezvous = (port, ready, datetime.timedelta(seconds=timeout_s))
    procs = mp.start_processes(_entry, args=(fn, world_size, rendezvous, backend, queue, args),
                               nprocs=world_size, join=False, start_method=start_method)
    results: dict[int, Any] = {}
    done = False
    while not done:
        done = procs.join(timeout=0.05)  # raises when a process failed
        while not queue.empty():  # drain while running: a full pipe would block the children
            rank, blob = queue.get()
            results[rank] = pickle.loads(blob)
    return [results[r] for r in range(world_size)]


def _entry(rank: int, fn: Callable[..., Any], world_size: int, rendezvous: tuple, backend: str,
           queue: Any, args: tuple) -> None:
    torch.set_num_threads(1)
    port, ready, timeout = rendezvous
    if rank == 0:
        store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timeout)
        port.value = store.port
        ready.set()
    else:
        if not ready.wait(timeout.total_seconds()):
            raise TimeoutError(f"rank 0 did not open its store within {timeout}")
        store = dist.TCPStore("127.0.0.1", port.value, is_master=False, timeout=timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    try:
        queue.put((rank, pickle.dumps(fn(rank, world_size, *args))))
    finally:
        dist.destroy_process_group()
