"""Samplers and loaders: lhotse's ``DynamicBucketingSampler`` over our :class:`AsrDataset`.

Distributed semantics (lhotse's): each of ``world_size`` workers builds the
same sampler with its own ``rank`` and the same ``seed``; at every step
the sampler draws ``world_size`` batches and keeps the ``rank``-th, so every
worker takes the same number of steps per epoch. With ``drop_last=False``
the last round's examples are redistributed (duplicated if fewer than
``world_size``); with ``drop_last=True`` that round is dropped.
"""

from __future__ import annotations

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler, SpecAugment
from lhotse.dataset.sampling.base import CutSampler

from asr_trainer.data.config import DataConfig
from asr_trainer.data.dataset import AsrDataset, Encode


def make_train_sampler(cuts: CutSet, cfg: DataConfig, rank: int = 0, world_size: int = 1, seed: int = 0,
                       num_cuts: int | None = None) -> CutSampler:
    """Shuffled, duration-bucketed sampler for worker ``rank`` of ``world_size``.

    ``cuts``: read lazily (:func:`asr_trainer.data.cuts.load_cuts` with ``lazy=True``; the
    sampler streams them, as lhotse's dynamic samplers are built to); ``num_cuts``: their
    number (default ``len(cuts)``, which a lazy set does not know). ``seed`` must be the
    same on every worker. Sets with fewer than two cuts per bucket get fewer buckets (a plain
    sampler below 2 cuts).
    """
    n = len(cuts) if num_cuts is None else num_cuts
    buckets = min(cfg.num_buckets, n // 2)
    kwargs = dict(max_duration=cfg.max_duration, shuffle=cfg.shuffle, drop_last=cfg.drop_last,
                  world_size=world_size, rank=rank, seed=seed)
    if buckets < 2:
        return SimpleCutSampler(cuts, **kwargs)
    return DynamicBucketingSampler(cuts, num_buckets=buckets, **kwargs)


def make_valid_sampler(cuts: CutSet, cfg: DataConfig) -> CutSampler:
    """Deterministic single-worker sampler over all of ``cuts`` (in memory), shortest first: batches of
    similar lengths, so little padding (validation, decoding)."""
    return SimpleCutSampler(cuts.sort_by_duration(), max_duration=cfg.max_duration, shuffle=False)


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


def make_loader(sampler: CutSampler, encode: Encode, cfg: DataConfig, train: bool) -> torch.utils.data.DataLoader:
    """A DataLoader yielding :class:`AsrDataset` batches in ``sampler`` order."""
    dataset = AsrDataset(encode, make_spec_augment(cfg) if train else None)
    return torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=cfg.num_workers,
        persistent_workers=False,
    )
