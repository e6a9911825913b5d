"""What a strategy needs from the trainer: a replica and a way to step it.

:class:`Replica` matches ``asr_trainer.train.replica.Replica`` by shape (model,
optimizer, scheduler), so the trainer's own replicas and its
``apply_update(replica, clip_norm)`` (via ``functools.partial``) plug in directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import nn


class ReplicaLike(Protocol):
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any


@dataclass
class Replica:
    """Model + optimizer + (optional) per-step LR scheduler of one worker or group."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None


ReplicaFactory = Callable[[], ReplicaLike]
UpdateFn = Callable[[ReplicaLike], Any]


class NoScheduler:
    """A scheduler that does nothing (for replicas whose LR is driven from elsewhere)."""

    def step(self) -> None:
        pass


def sgd_update(replica: ReplicaLike, clip_norm: float | None = None) -> None:
    """Default update: optional clipping, optimizer step, scheduler step, zero grads."""
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(replica.model.parameters(), clip_norm)
    replica.optimizer.step()
    if replica.scheduler is not None:
        replica.scheduler.step()
    replica.optimizer.zero_grad(set_to_none=True)


def twin_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """A new optimizer of the same class and hyper-parameters over the same parameters, own state."""
    groups = [dict(g) for g in optimizer.param_groups]
    return type(optimizer)(groups, **optimizer.defaults)


def copy_hyperparameters(src: torch.optim.Optimizer, dst: torch.optim.Optimizer) -> None:
    """Copy every per-group setting (lr, ...) of ``src`` onto ``dst`` (same group layout)."""
    for s, d in zip(src.param_groups, dst.param_groups):
        d.update({k: v for k, v in s.items() if k != "params"})


def reset_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Forget the optimizer's state (momentum buffers, Adam moments and step counts)."""
    optimizer.state.clear()
