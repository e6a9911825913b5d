"""Samplers and loaders: lhotse's ``DynamicBucketingSampler`` over our :class:`AsrDataset`.

Distributed semantics (lhotse's): each of ``world_size`` workers builds the
same sampler with its own ``rank`` and the same ``seed``; at every step
the sampler draws ``world_size`` batches and keeps the ``rank``-th, so every
worker takes the same number of steps per epoch. With ``drop_last=False``
the last round's examples are redistributed (duplicated if fewer than
``world_size``); with ``drop_last=True`` that round is dropped.

A process hosting all ``world_size`` workers (the simulated cluster) need not build
``world_size`` copies of that sampler, each building every batch to keep one in
``world_size``: :class:`DealtSampler` builds each round once and deals it, worker ``r``
getting exactly what the ``rank=r`` copy would yield (:func:`deal_round`).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Iterator

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler, SpecAugment
from lhotse.dataset.sampling.base import CutSampler, attach_dataloading_info, mark_as_duplicate
from lhotse.manipulation import combine

from asr_trainer.data.config import DataConfig
from asr_trainer.data.dataset import AsrDataset, Encode


def make_train_sampler(cuts: CutSet, cfg: DataConfig, rank: int = 0, world_size: int = 1, seed: int = 0,
                       num_cuts: int | None = None) -> CutSampler:
    """Shuffled, duration-bucketed sampler for worker ``rank`` of ``world_size``.

    ``cuts``: read lazily (:func:`asr_trainer.data.cuts.load_cuts` with ``lazy=True``; the
    sampler streams them, as lhotse's dynamic samplers are built to); ``num_cuts``: their
    number (default ``len(cuts)``, which a lazy set does not know). ``seed`` must be the
    same on every worker. Sets with fewer than two cuts per bucket get fewer buckets (a plain
    sampler below 2 cuts). ``cfg.max_cuts`` (> 0) caps the utterances of a batch (lhotse's ``max_cuts``).
    """
    n = len(cuts) if num_cuts is None else num_cuts
    buckets = min(cfg.num_buckets, n // 2)
    kwargs = dict(max_duration=cfg.max_duration, max_cuts=cfg.max_cuts or None, shuffle=cfg.shuffle,
                  drop_last=cfg.drop_last, world_size=world_size, rank=rank, seed=seed)
    if buckets < 2:
        return SimpleCutSampler(cuts, **kwargs)
    return DynamicBucketingSampler(cuts, num_buckets=buckets, **kwargs)


def deal_round(sampler: CutSampler) -> list[CutSet]:
    """The next round of ``sampler``: ``world_size`` batches, entry ``r`` the batch the ``rank=r``
    copy of ``sampler`` would yield next.

    The round logic of lhotse's ``CutSampler.__next__`` (1.33), kept for every rank instead of
    rank ``sampler.rank``: ``world_size`` batches are drawn; a short last round is redistributed
    (``drop_last=False``, duplicating the first cuts if there are fewer than ``world_size``) or
    ends the epoch (``drop_last=True``). Raises ``StopIteration`` at the epoch's end.
    ``tests/test_sampler_deal.py`` checks it against lhotse's per-rank samplers.
    """
    n = sampler.world_size
    sampler.allow_iter_to_reset_state()
    batches = []
    for _ in range(n):
        try:
            batches.append(sampler._next_batch())
        except StopIteration:
            if n == 1 or sampler.drop_last:
                raise
    if not batches:
        raise StopIteration
    if len(batches) < n:
        batches = _redistribute(batches, n)
    for rank, batch in enumerate(batches):
        attach_dataloading_info(batch, rank=rank, world_size=n)
    return batches


def _redistribute(batches: list[CutSet], n: int) -> list[CutSet]:
    """A short last round's cuts split into ``n`` batches, the first ones duplicated while fewer than ``n``."""
    combined = combine(batches)
    chunk = 0
    while (diff := n - len(combined)) > 0:
        combined = combined + combined.subset(first=diff).modify_ids(mark_as_duplicate(chunk))
        chunk += 1
    return combined.split(n)


class DealtSampler:
    """One sampler of an ``N``-worker run whose rounds are dealt to its ``N`` workers.

    ``sampler``: built for ``world_size=N`` (any rank: only the world size shapes the batches).
    Worker ``w`` reads :meth:`shard` ``(w)``, which yields what lhotse's ``rank=w`` sampler
    would; a round is built when a worker finds its queue empty, so the ``N`` shards must be
    read in lockstep (one batch of each per step). Its state is the epoch and the rounds dealt
    (with ``data.num_workers > 0`` the loaders read ahead of the steps, as they do lhotse's samplers).
    """

    def __init__(self, sampler: CutSampler) -> None:
        self.sampler = sampler
        self.rounds = 0
        self._queues: list[deque[CutSet]] = [deque() for _ in range(sampler.world_size)]

    def start_epoch(self, epoch: int, restored: bool = False) -> None:
        """The shuffle of ``epoch`` from its start; ``restored``: keep the position :meth:`load_state_dict` set."""
        if restored:
            return
        self.sampler.set_epoch(epoch)
        iter(self.sampler)
        self.rounds = 0
        for queue in self._queues:
            queue.clear()

    def shard(self, worker: int) -> Iterator[CutSet]:
        """Worker ``worker``'s batches for the rest of the epoch."""
        queue = self._queues[worker]
        while queue or self._deal():
            yield queue.popleft()

    def _deal(self) -> bool:
        """Deal the next round into the queues; False at the epoch's end."""
        try:
            batches = deal_round(self.sampler)
        except StopIteration:
            return False
        self.rounds += 1
        for queue, batch in zip(self._queues, batches):
            queue.append(batch)
        return True

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "rounds"}``: where the epoch stands (rounds dealt; every worker read its batch of each)."""
        return {"epoch": self.sampler.epoch, "rounds": self.rounds}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Go to :meth:`state_dict`'s position: restart its epoch and deal (and drop) its rounds again."""
        self.start_epoch(state["epoch"])
        for _ in range(state["rounds"]):
            deal_round(self.sampler)
        self.rounds = state["rounds"]


def make_valid_sampler(cuts: CutSet, cfg: DataConfig) -> CutSampler:
    """Deterministic single-worker sampler over all of ``cuts`` (in memory), shortest first: batches of
    similar lengths, so little padding (validation, decoding); ``cfg.valid_max_duration`` seconds a batch
    (``cfg.max_duration`` when 0)."""
    seconds = cfg.valid_max_duration or cfg.max_duration
    return SimpleCutSampler(cuts.sort_by_duration(), max_duration=seconds, shuffle=False)


def make_spec_augment(cfg: DataConfig) -> SpecAugment | None:
    """lhotse's SpecAugment from the data settings, or ``None`` when disabled."""
    if not cfg.spec_augment:
        return None
    return SpecAugment(
        time_warp_factor=cfg.time_warp_factor or None,
        num_feature_masks=cfg.num_feature_masks,
        features_mask_size=cfg.features_mask_size,
        num_frame_masks=cfg.num_frame_masks,
        frames_mask_size=cfg.frames_mask_size,
    )


def make_loader(sampler: Iterable[CutSet], encode: Encode, cfg: DataConfig,
                train: bool) -> torch.utils.data.DataLoader:
    """A DataLoader yielding :class:`AsrDataset` batches in ``sampler`` order (a lhotse sampler or a
    :meth:`DealtSampler.shard`)."""
    dataset = AsrDataset(encode, make_spec_augment(cfg) if train else None)
    return torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=cfg.num_workers,
        persistent_workers=False,
    )
