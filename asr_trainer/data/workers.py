"""Per logical worker: its own sampler, data iterator and random-number streams.

A process hosts one worker (torchrun) or all ``N`` of them (simulated cluster);
either way worker ``w`` gets lhotse's shard ``rank=w`` of ``world_size=N`` and its
own RNG states, so SpecAugment masks and dropout draw the same numbers for ``w``
in both cases. While worker ``w`` loads a batch or runs forward/backward, its
RNG states are swapped into the process-wide generators (python ``random``,
numpy, torch CPU and, when present, CUDA) and swapped back out afterwards.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from lhotse import CutSet

from asr_trainer.errors import UserError
from asr_trainer.rng import RngState, restore_rng, rng_state, seeded_state
from asr_trainer.data.config import DataConfig
from asr_trainer.data.dataset import Encode
from asr_trainer.data.sampler import make_loader, make_train_sampler

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
        saved = rng_state()
        restore_rng(self.states[worker])
        try:
            yield
        finally:
            self.states[worker] = rng_state()
            restore_rng(saved)


class WorkerData:
    """Samplers and batch iterators of the hosted workers of an ``N``-worker run.

    Per step: :meth:`prefetch` loads the next batch of every hosted worker (False
    when one of them ran out), then :meth:`take` hands worker ``w`` its batch.
    """

    def __init__(self, cuts: CutSet, data_cfg: DataConfig, encode: Encode, hosted: Sequence[int],
                 world_size: int, seed: int, rng: WorkerRng, num_cuts: int | None = None) -> None:
        """``cuts``: the training cuts, lazy ones streamed (``num_cuts`` of them; default ``len(cuts)``)."""
        self.cfg, self.encode, self.rng = data_cfg, encode, rng
        self.samplers = {w: make_train_sampler(cuts, data_cfg, rank=w, world_size=world_size, seed=seed,
                                               num_cuts=num_cuts) for w in hosted}
        self._iters: dict[int, Iterator[dict]] = {}
        self._next: dict[int, dict] = {}

    def start_epoch(self, epoch: int, restored: bool = False) -> None:
        """New shuffles for ``epoch`` (same on every worker) and fresh iterators.

        ``restored``: the samplers were just restored mid-epoch (:meth:`load_state_dict`);
        they go on from there instead of starting the epoch over.
        """
        for w, sampler in self.samplers.items():
            if not restored:
                sampler.set_epoch(epoch)
            self._iters[w] = iter(make_loader(sampler, self.encode, self.cfg, train=True))
        self._next.clear()

    def prefetch(self) -> bool:
        """Load the next batch of every hosted worker; False if any has none left."""
        self._next.clear()
        for w, it in self._iters.items():
            with self.rng.active(w):  # SpecAugment draws here
                batch = next(it, None)
            if batch is None:
                return False
            self._next[w] = batch
        return True

    def take(self, worker: int) -> dict:
        """The batch :meth:`prefetch` loaded for ``worker``."""
        return self._next.pop(worker)

    def state_dict(self) -> dict[int, dict]:
        """Per hosted worker its sampler state and RNG states (for an exact resume)."""
        return {w: {"sampler": s.state_dict(), "rng": self.rng.states[w]} for w, s in self.samplers.items()}

    def load_state_dict(self, state: dict[int, dict], samplers: bool = True) -> None:
        """Inverse of :meth:`state_dict`; ``samplers=False`` restores only the RNG states (epoch-end resume)."""
        if sorted(state) != sorted(self.samplers):
            raise UserError(f"checkpoint holds workers {sorted(state)}, this process hosts {sorted(self.samplers)}")
        for w, sampler in self.samplers.items():
            self.rng.states[w] = copy.deepcopy(state[w]["rng"])
            if samplers:
                sampler.load_state_dict(copy.deepcopy(state[w]["sampler"]))  # lhotse consumes the dict
