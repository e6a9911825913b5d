"""Per logical worker: its shard of the data, its batch iterator and random-number streams.

A process hosts one worker (torchrun) or all ``N`` of them (simulated cluster);
either way worker ``w`` gets lhotse's shard ``rank=w`` of ``world_size=N`` (torchrun:
lhotse's ``rank=w`` sampler; simulated: one sampler dealt to all ``N`` workers,
:class:`~asr_trainer.data.sampler.DealtSampler`, giving the same batches) and its own
RNG states, so SpecAugment masks and dropout draw the same numbers for ``w`` in both cases.
While worker ``w`` loads a batch or runs forward/backward, its RNG states are swapped into
the process-wide generators (python ``random``, numpy, torch CPU and, when present, CUDA)
and swapped back out afterwards.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Iterator, Sequence

from lhotse import CutSet
from lhotse.dataset.sampling.base import CutSampler

from asr_trainer.errors import UserError
from asr_trainer.rng import RngState, restore_rng, rng_state, seeded_state
from asr_trainer.data.config import DataConfig
from asr_trainer.data.dataset import Encode
from asr_trainer.data.sampler import DealtSampler, make_loader, make_train_sampler

WORKER_SEED_STRIDE = 1_000_003


def worker_rng_state(seed: int, worker: int) -> RngState:
    """Fresh RNG states (:func:`asr_trainer.rng.rng_state` layout) of worker ``worker``; the process's are untouched."""
    return seeded_state(seed * WORKER_SEED_STRIDE + worker)


class WorkerRng:
    """The RNG states of the hosted workers; :meth:`active` makes one of them the process's."""

    def __init__(self, seed: int, workers: Sequence[int]) -> None:
        self.states = {w: worker_rng_state(seed, w) for w in workers}

    @contextmanager
    def active(self, worker: int) -> Iterator[None]:
        """Worker ``worker``'s states are the process's inside the block; the process's are kept aside."""
        with self.swapping() as swap, swap(worker):
            yield

    @contextmanager
    def swapping(self) -> Iterator[Callable[[int], ContextManager[None]]]:
        """``swap(w)`` blocks of several workers in turn, the process's states kept aside once for all of them.

        ``with rng.swapping() as swap:`` then ``with swap(w): ...`` per worker gives each worker the
        same draws as :meth:`active` would, with half the state copies (per worker one restore, one save).
        """
        saved = rng_state()
        try:
            yield self._swap
        finally:
            restore_rng(saved)

    @contextmanager
    def _swap(self, worker: int) -> Iterator[None]:
        restore_rng(self.states[worker])
        try:
            yield
        finally:
            self.states[worker] = rng_state()


class RankSampler:
    """The sampler of a process hosting one worker ``w`` of ``N`` (torchrun): lhotse's ``rank=w`` shard.

    The interface of :class:`~asr_trainer.data.sampler.DealtSampler`; the state is lhotse's.
    """

    def __init__(self, sampler: CutSampler) -> None:
        self.sampler = sampler

    def start_epoch(self, epoch: int, restored: bool = False) -> None:
        """New shuffle for ``epoch``; ``restored``: keep the position :meth:`load_state_dict` set."""
        if not restored:
            self.sampler.set_epoch(epoch)

    def shard(self, worker: int) -> CutSampler:
        """The batches of ``worker`` (this process's worker)."""
        return self.sampler

    def state_dict(self) -> dict[str, Any]:
        """lhotse's sampler state."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.sampler.load_state_dict(copy.deepcopy(state))  # lhotse consumes the dict


def make_worker_sampler(cuts: CutSet, cfg: DataConfig, hosted: Sequence[int], world_size: int, seed: int,
                        num_cuts: int | None) -> DealtSampler | RankSampler:
    """One sampler per process: dealt to all ``world_size`` workers, or one rank's shard when it hosts one."""
    if len(hosted) == world_size:
        return DealtSampler(make_train_sampler(cuts, cfg, rank=0, world_size=world_size, seed=seed,
                                               num_cuts=num_cuts))
    if len(hosted) == 1:
        return RankSampler(make_train_sampler(cuts, cfg, rank=hosted[0], world_size=world_size, seed=seed,
                                              num_cuts=num_cuts))
    raise ValueError(f"a process hosts one worker or all {world_size}, not {list(hosted)}")


class WorkerData:
    """The sampler and batch iterators of the hosted workers of an ``N``-worker run.

    Per step: :meth:`prefetch` loads the next batch of every hosted worker (False
    when one of them ran out), then :meth:`take` hands worker ``w`` its batch.
    """

    def __init__(self, cuts: CutSet, data_cfg: DataConfig, encode: Encode, hosted: Sequence[int],
                 world_size: int, seed: int, rng: WorkerRng, num_cuts: int | None = None) -> None:
        """``cuts``: the training cuts, lazy ones streamed (``num_cuts`` of them; default ``len(cuts)``)."""
        self.cfg, self.encode, self.rng, self.hosted = data_cfg, encode, rng, list(hosted)
        self.sampler = make_worker_sampler(cuts, data_cfg, hosted, world_size, seed, num_cuts)
        self._iters: dict[int, Iterator[dict]] = {}
        self._next: dict[int, dict] = {}

    def start_epoch(self, epoch: int, restored: bool = False) -> None:
        """New shuffles for ``epoch`` (same on every worker) and fresh iterators.

        ``restored``: the sampler was just restored mid-epoch (:meth:`load_state_dict`);
        it goes on from there instead of starting the epoch over.
        """
        self.sampler.start_epoch(epoch, restored)
        self._iters = {w: iter(make_loader(self.sampler.shard(w), self.encode, self.cfg, train=True))
                       for w in self.hosted}
        self._next.clear()

    def prefetch(self) -> bool:
        """Load the next batch of every hosted worker; False if any has none left."""
        self._next.clear()
        with self.rng.swapping() as swap:
            for w, it in self._iters.items():
                with swap(w):  # SpecAugment draws here
                    batch = next(it, None)
                if batch is None:
                    return False
                self._next[w] = batch
        return True

    def peek(self, worker: int) -> dict:
        """The batch :meth:`prefetch` loaded for ``worker``, left in place."""
        return self._next[worker]

    def take(self, worker: int) -> dict:
        """The batch :meth:`prefetch` loaded for ``worker``."""
        return self._next.pop(worker)

    def state_dict(self) -> dict[str, Any]:
        """``{"sampler": the process's sampler state, "rng": {worker: RNG states}}`` (for an exact resume)."""
        return {"sampler": self.sampler.state_dict(), "rng": {w: self.rng.states[w] for w in self.hosted}}

    def load_state_dict(self, state: dict[str, Any], samplers: bool = True) -> None:
        """Inverse of :meth:`state_dict`; ``samplers=False`` restores only the RNG states (epoch-end resume)."""
        missing = [k for k in ("sampler", "rng") if k not in state]
        if missing:
            raise UserError(f"the checkpoint's data section lacks {', '.join(missing)} (it holds one sampler "
                            "per worker: an older layout); resume it with the version that wrote it")
        if sorted(state["rng"]) != sorted(self.hosted):
            raise UserError(f"checkpoint holds workers {sorted(state['rng'])}, this process hosts {self.hosted}")
        for w in self.hosted:
            self.rng.states[w] = copy.deepcopy(state["rng"][w])
        if samplers:
            self.sampler.load_state_dict(state["sampler"])
