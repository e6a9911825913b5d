"""What a strategy needs from the trainer: a replica and a way to step it.

The trainer's :class:`asr_trainer.train.replica.Replica` and
:func:`asr_trainer.train.step.apply_update` (via ``functools.partial``) are THE
replica and update; strategies only rely on their shape (:class:`ReplicaLike`).
:class:`Replica` here is the minimal stand-in (scheduler optional) for the toy
workload and GTC's per-worker twin optimizers; :func:`sgd_update` is
``apply_update`` for such replicas (no clipping unless asked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import nn

from asr_trainer.train.step import apply_update


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


def sgd_update(replica: ReplicaLike, clip_norm: float | None = None) -> float:
    """:func:`asr_trainer.train.step.apply_update` for replicas whose scheduler may be None.

    ``clip_norm=None`` does not clip (a scale of exactly 1). Returns the gradient norm.
    """
    stepped = Replica(replica.model, replica.optimizer, replica.scheduler or NoScheduler())
    return apply_update(stepped, math.inf if clip_norm is None else clip_norm)


def replica_state(replica: ReplicaLike) -> dict[str, Any]:
    """``{"model", "optimizer", "scheduler"}`` state dicts of ``replica`` (``scheduler``: None when it has none)."""
    scheduler = replica.scheduler
    return {"model": replica.model.state_dict(), "optimizer": replica.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if hasattr(scheduler, "state_dict") else None}


def load_replica_state(replica: ReplicaLike, state: dict[str, Any]) -> None:
    """Inverse of :func:`replica_state`."""
    replica.model.load_state_dict(state["model"])
    replica.optimizer.load_state_dict(state["optimizer"])
    if state.get("scheduler") is not None:
        replica.scheduler.load_state_dict(state["scheduler"])


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
