"""Where the workers of a synchronised run live: torchrun processes or one simulating process.

Under ``torchrun`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` set)
:func:`communicator` joins the process group (nccl with ``device: cuda``, the
device picked by ``LOCAL_RANK``; gloo on CPU) and yields a
:class:`~asr_trainer.sync.DistCommunicator`: one logical worker per process.
Otherwise it yields a :class:`~asr_trainer.sync.SimCommunicator` of
``simulate_workers`` (default 1) logical workers in this process.
"""

from __future__ import annotations

import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from asr_trainer.errors import UserError
from asr_trainer.sync import Communicator, DistCommunicator, HybridConfig, SimCommunicator, SyncConfig
from asr_trainer.sync.config import hybrid_group_size
from asr_trainer.sync.strategy import hybrid_groups
from asr_trainer.train.fault import restart_count

TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")


@dataclass(frozen=True)
class Launch:
    """This process's place: ``world_size`` workers, this one ``rank`` (``local_rank`` on its node)."""

    world_size: int
    rank: int
    local_rank: int


def torchrun_launch() -> Launch | None:
    """The torchrun environment of this process, or None when not launched by torchrun."""
    if not all(v in os.environ for v in TORCHRUN_VARS):
        return None
    try:
        return Launch(int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]))
    except ValueError:
        raise UserError(f"torchrun variables {TORCHRUN_VARS} must be integers (addresses aside)") from None


def world_size_of(simulate_workers: int | None) -> int:
    """Number of logical workers; fails clearly on ``--simulate-workers`` under torchrun or below 1."""
    launch = torchrun_launch()
    if launch is not None and simulate_workers is not None:
        raise UserError(f"--simulate-workers cannot be combined with torchrun (WORLD_SIZE={launch.world_size} "
                        "is set): the processes already are the workers")
    if simulate_workers is not None and simulate_workers < 1:
        raise UserError(f"--simulate-workers must be >= 1, got {simulate_workers}")
    return launch.world_size if launch is not None else (simulate_workers or 1)


def check_sync_config(cfg: SyncConfig, world_size: int) -> None:
    """Checks that need the number of workers (also done by ``build_strategy``; here before any setup)."""
    if isinstance(cfg, HybridConfig):
        hybrid_groups(world_size, hybrid_group_size(cfg, world_size))


def attempt_store(timeout: datetime.timedelta):
    """torchrun's rendezvous store, with keys private to this attempt (``TORCHELASTIC_RESTART_COUNT``).

    After a torchrun restart the agent's store still holds the previous attempt's
    process-group keys (a dead rank 0's address); without a per-attempt prefix a
    restarted worker may read those and fail to connect, or hang.
    """
    import torch.distributed as dist
    from torch.distributed.rendezvous import rendezvous

    store, _, _ = next(rendezvous("env://", timeout=timeout))
    return dist.PrefixStore(f"attempt{restart_count()}/", store)


@contextmanager
def communicator(device: str, simulate_workers: int | None, timeout_s: float = 1800.0,
                 exact_order: bool = False) -> Iterator[Communicator]:
    """The run's communicator (see module doc); the process group is torn down on exit.

    ``exact_order``: real all-reduces sum in rank order, bit-identical to the simulation
    (see :class:`~asr_trainer.sync.DistCommunicator`).
    """
    world_size_of(simulate_workers)
    launch = torchrun_launch()
    if launch is None:
        yield SimCommunicator(simulate_workers or 1)
        return
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(launch.local_rank)
    timeout = datetime.timedelta(seconds=timeout_s)
    dist.init_process_group("nccl" if cuda else "gloo", store=attempt_store(timeout), rank=launch.rank,
                            world_size=launch.world_size, timeout=timeout)
    try:
        yield DistCommunicator(f"cuda:{launch.local_rank}" if cuda else "cpu", exact_order)
    finally:
        dist.destroy_process_group()
