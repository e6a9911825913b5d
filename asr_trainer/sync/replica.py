"""A worker's replica (model + optimizer + LR scheduler), the update that steps it, optimizer helpers.

Strategies own every optimizer step: they call an :data:`UpdateFn` on a
:class:`Replica` once its model holds the gradients to apply.
:func:`clipped_step` is the update (clip, step any optimizer and its scheduler,
zero the grads); the trainer passes it with its ``clip_norm`` through ``functools.partial``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch


@dataclass
class Replica:
    """Model + optimizer + per-step LR scheduler of one worker (or of one group of a strategy).

    ``scheduler`` None: the learning rate is driven from elsewhere (GTC's per-worker twin
    optimizers follow the shared replica's learning rate).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None

    def state_dict(self) -> dict[str, Any]:
        """``model``, ``optimizer`` and ``scheduler`` (None without one) state dicts."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])


ReplicaFactory = Callable[[], Replica]
UpdateFn = Callable[[Replica], Any]


def clipped_step(replica: Replica, clip_norm: float | None = None) -> float:
    """Clip the gradients to ``clip_norm`` (None: no clipping), step the optimizer and scheduler, zero the grads.

    Returns the gradient norm before clipping. A non-finite norm skips the step
    (grads are zeroed, the scheduler does not advance); the caller counts it.
    """
    limit = math.inf if clip_norm is None else clip_norm
    norm = float(torch.nn.utils.clip_grad_norm_(replica.model.parameters(), limit))
    if math.isfinite(norm):
        replica.optimizer.step()
        if replica.scheduler is not None:
            replica.scheduler.step()
    replica.optimizer.zero_grad(set_to_none=True)
    return norm


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


def _state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The optimizer's per-parameter floating state tensors of the parameter's size (momentum buffers,
    Adam's moments), in parameter order then key order; step counters are left out."""
    out = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            out += [state[k] for k in sorted(state) if torch.is_tensor(state[k]) and state[k].is_floating_point()
                    and state[k].shape == p.shape]
    return out


def state_vector(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """:func:`_state_tensors` flattened into one new vector (S,); empty before the first step."""
    tensors = _state_tensors(optimizer)
    if not tensors:
        first = optimizer.param_groups[0]["params"][0]
        return torch.zeros(0, dtype=first.dtype, device=first.device)
    return torch.cat([t.reshape(-1) for t in tensors])


def set_state_vector(optimizer: torch.optim.Optimizer, vec: torch.Tensor) -> None:
    """Copy ``vec`` (S,) back into the tensors of :func:`state_vector` (same optimizer layout)."""
    offset = 0
    for t in _state_tensors(optimizer):
        t.copy_(vec[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    if offset != vec.numel():
        raise ValueError(f"optimizer state of {offset} elements, vector of {vec.numel()}: layouts differ")

