"""What a strategy needs from the trainer: its replica and its update, plus optimizer helpers.

Strategies step the trainer's :class:`asr_trainer.train.replica.Replica` with
:func:`asr_trainer.train.step.apply_update` (via ``functools.partial`` for clipping);
:func:`sgd_update` is that update without clipping, the default of the toy workload.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from asr_trainer.train.replica import Replica
from asr_trainer.train.step import apply_update


ReplicaFactory = Callable[[], Replica]
UpdateFn = Callable[[Replica], Any]


def sgd_update(replica: Replica, clip_norm: float | None = None) -> float:
    """:func:`asr_trainer.train.step.apply_update`; ``clip_norm=None`` does not clip. Returns the gradient norm."""
    return apply_update(replica, math.inf if clip_norm is None else clip_norm)


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
