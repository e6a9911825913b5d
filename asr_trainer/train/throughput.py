"""Training throughput: seconds of audio trained per wall second (the real-time factor), timed on batches.

* :func:`timed_steps`: wall time and audio of one training step per batch (the throughput benchmark's clock).
* :func:`probe_real_time_factor`: a few steps of a run's own model, settings and training cuts (the
  recipe's time estimate, :mod:`asr_trainer.train.estimate`).
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Iterable

import torch
from lhotse import CutSet

from asr_trainer.data.dataset import Encode
from asr_trainer.data.sampler import make_loader, make_train_sampler
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.sync.replica import Replica, clipped_step
from asr_trainer.train.build import build_replica
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.epoch import FRAME_SHIFT_S
from asr_trainer.train.step import forward_backward


def timed_steps(replica: Replica, batches: Iterable[dict], device: str, bf16: bool,
                clip_norm: float) -> tuple[float, float]:
    """(seconds, seconds of audio) of one training step per batch of ``batches`` (loading included).

    On cuda the device is synchronised before each clock read.
    """
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    step = functools.partial(clipped_step, clip_norm=clip_norm)
    audio = 0.0
    sync()
    start = time.perf_counter()
    for batch in batches:
        audio += forward_backward(replica.model, batch, device, bf16).input_frames * FRAME_SHIFT_S
        step(replica)
    sync()
    return time.perf_counter() - start, audio


def probe_real_time_factor(cfg: TrainConfig, model_cfg: ModelConfig, cuts: CutSet, encode: Encode,
                           num_outputs: int, steps: int = 6, warmup: int = 1) -> float:
    """Seconds of audio per wall second of ``steps`` training steps (after ``warmup`` untimed ones) of a fresh
    model on the first batches of ``cuts``: the full pipeline (sampler, features, SpecAugment, step)."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    replica = build_replica(model_cfg, cfg, num_outputs, cfg.device)
    batches = iter(make_loader(make_train_sampler(cuts, cfg.data, seed=cfg.seed), encode, cfg.data, train=True))
    timed_steps(replica, itertools.islice(batches, warmup), cfg.device, cfg.bf16, cfg.clip_norm)
    seconds, audio = timed_steps(replica, itertools.islice(batches, steps), cfg.device, cfg.bf16, cfg.clip_norm)
    if audio <= 0:
        raise UserError(f"no training batch to time: the training cuts hold {warmup} batches or fewer")
    return audio / seconds
