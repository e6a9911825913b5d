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

from asr_trainer.train.config import DataConfig
from asr_trainer.train.dataset import AsrDataset, Encode


def make_train_sampler(cuts: CutSet, cfg: DataConfig, rank: int = 0, world_size: int = 1, seed: int = 0) -> CutSampler:
    """Shuffled, duration-bucketed sampler for worker ``rank`` of ``world_size``.

    ``seed`` must be the same on every worker. Sets with fewer than two cuts
    per bucket get fewer buckets (a plain sampler below 2 cuts).
    """
    return _sampler(cuts, cfg.max_duration, cfg.num_buckets, cfg.shuffle, cfg.drop_last, rank, world_size, seed)


def make_valid_sampler(cuts: CutSet, cfg: DataConfig) -> CutSampler:
    """Deterministic single-worker sampler over all of ``cuts`` (validation, decoding)."""
    return _sampler(cuts, cfg.max_duration, cfg.num_buckets, False, False, 0, 1, 0)


def _sampler(cuts: CutSet, max_duration: float, num_buckets: int, shuffle: bool, drop_last: bool,
             rank: int, world_size: int, seed: int) -> CutSampler:
    buckets = min(num_buckets, len(cuts) // 2)
    kwargs = dict(max_duration=max_duration, shuffle=shuffle, drop_last=drop_last, world_size=world_size,
                  rank=rank, seed=seed)
    if buckets < 2:
        return SimpleCutSampler(cuts, **kwargs)
    return DynamicBucketingSampler(cuts, num_buckets=buckets, **kwargs)


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
