"""A :class:`Replica`: one worker's model, optimizer and LR scheduler, built from the configs.

Distributed strategies build ``N`` of them (BMUF: one per simulated worker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from asr_trainer.models import ModelConfig, build_model
from asr_trainer.train.config import OptimConfig, TrainConfig


@dataclass
class Replica:
    """Model + optimizer + per-step LR scheduler of one worker (or of one group of a strategy).

    ``scheduler`` None: the learning rate is driven from elsewhere (GTC's per-worker twin
    optimizers follow the shared replica's learning rate).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])


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


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step ``LambdaLR`` following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))


def build_replica(model_cfg: ModelConfig, cfg: TrainConfig, num_outputs: int, device: torch.device | str = "cpu") -> Replica:
    """A fresh replica on ``device``; weights from the current torch RNG state."""
    model = build_model(model_cfg, num_outputs).to(device)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    return Replica(model, optimizer, build_scheduler(optimizer, cfg.optim))
