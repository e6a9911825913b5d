"""Building a worker's :class:`~asr_trainer.sync.replica.Replica` (model, optimizer, LR schedule) from the configs.

A strategy calls the factory once per group it hosts (BMUF: one per simulated worker).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from asr_trainer.models import ModelConfig, build_model
from asr_trainer.sync.replica import Replica
from asr_trainer.train.config import OptimConfig, TrainConfig


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.name`` over ``params``."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` (0-based)."""
    warm = max(cfg.warmup_steps, 1)
    if step < cfg.warmup_steps:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    return math.sqrt(warm / (step + 1))


def batch_scaled(cfg: OptimConfig, step_batch: float) -> OptimConfig:
    """``cfg`` with ``lr`` scaled for optimizer steps of ``step_batch`` seconds of audio by
    ``cfg.lr_scaling`` against ``cfg.reference_batch`` (unchanged for ``none``)."""
    if cfg.lr_scaling == "none":
        return cfg
    ratio = step_batch / cfg.reference_batch
    return dataclasses.replace(cfg, lr=cfg.lr * (math.sqrt(ratio) if cfg.lr_scaling == "sqrt" else ratio))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step ``LambdaLR`` following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))


def build_replica(model_cfg: ModelConfig, cfg: TrainConfig, num_outputs: int, device: torch.device | str = "cpu") -> Replica:
    """A fresh replica on ``device``; weights from the current torch RNG state."""
    model = build_model(model_cfg, num_outputs).to(device)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    return Replica(model, optimizer, build_scheduler(optimizer, cfg.optim))
