"""Run a function on ``N`` local processes joined by ``torch.distributed`` (tests, small runs).

    def work(rank: int, world_size: int, steps: int) -> float: ...
    results = run_processes(work, 4, 20)      # [work(0, 4, 20), ..., work(3, 4, 20)]

Processes are spawned (fresh interpreters), meet on a free 127.0.0.1 TCP port,
use one intra-op thread each, and return their (picklable) results by rank.
"""

from __future__ import annotations

import pickle
import socket
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo",
                  timeout_s: float = 120.0) -> list[Any]:
    """``[fn(rank, world_size, *args) for rank in range(world_size)]``, each in its own process.

    ``fn`` must be importable (module level). A failing process raises here.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    init = f"tcp://127.0.0.1:{free_port()}"
    procs = mp.start_processes(_entry, args=(fn, world_size, init, backend, timeout_s, queue, args),
                               nprocs=world_size, join=False, start_method="spawn")
    results: dict[int, Any] = {}
    done = False
    while not done:
        done = procs.join(timeout=0.05)  # raises when a process failed
        while not queue.empty():  # drain while running: a full pipe would block the children
            rank, blob = queue.get()
            results[rank] = pickle.loads(blob)
    return [results[r] for r in range(world_size)]


def _entry(rank: int, fn: Callable[..., Any], world_size: int, init: str, backend: str, timeout_s: float,
           queue: Any, args: tuple) -> None:
    import datetime

    torch.set_num_threads(1)
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    try:
        queue.put((rank, pickle.dumps(fn(rank, world_size, *args))))
    finally:
        dist.destroy_process_group()
