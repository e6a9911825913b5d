"""State a strategy keeps per hosted group, and the bookkeeping of one step.

``GradFn``: ``grad_fn(worker, model) -> stats`` runs the forward/backward of
logical worker ``worker`` (a global rank) on its next batch, leaving gradients
in ``model``'s ``.grad``; it never steps. Strategies zero the grads before
calling it and own every optimizer step and all communication.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from asr_trainer.sync import flat_vectors as flat
from asr_trainer.sync.comm import Communicator, Group
from asr_trainer.sync.replica import Replica, UpdateFn

GradFn = Callable[[int, nn.Module], Any]
# batch_grad_fn(workers, model) -> one stats per worker, or None: the workers' batches in one forward/backward
# leaving the SUM of their gradients in .grad (see asr_trainer.train.batched); None: it could not (nothing taken)
BatchGradFn = Callable[[list[int], nn.Module], "list[Any] | None"]


@dataclass
class GroupState:
    """One group hosted (at least partly) here: its replica, shared by its hosted members.

    ``members``: the group's ranks hosted by this process, in group order.
    Rule state (GTC residuals, ...) is owned by the rule, not kept here.
    """

    group: Group
    replica: Replica
    members: list[int]

    @property
    def model(self) -> nn.Module:
        return self.replica.model


class StepContext:
    """Runs workers' forward/backward and updates for one step, timing each part."""

    def __init__(self, comm: Communicator, grad_fn: GradFn, apply_update: UpdateFn,
                 batch_grad_fn: BatchGradFn | None = None) -> None:
        self.comm = comm
        self.grad_fn = grad_fn
        self.batch_grad_fn = batch_grad_fn
        self.apply_update = apply_update
        self.seconds = {"compute": 0.0, "encode_decode": 0.0}
        self.worker_stats: list[Any] = []
        self.densities: list[float] = []
        self.dropped = 0  # GTC contributions dropped as non-finite this step

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - start

    def backward(self, worker: int, model: nn.Module) -> None:
        """Fresh gradients of ``worker``'s next batch in ``model``."""
        with self.timed("compute"):
            model.zero_grad(set_to_none=True)
            self.worker_stats.append(self.grad_fn(worker, model))

    def gradient(self, worker: int, model: nn.Module) -> torch.Tensor:
        """``worker``'s gradient as a flat vector (P,)."""
        self.backward(worker, model)
        return flat.grads(model)

    def summed_gradient(self, workers: list[int], model: nn.Module) -> torch.Tensor | None:
        """The sum of ``workers``' gradients as a flat vector (P,) from one batched forward/backward, or None
        when there is no batched path or it declined (then nothing was consumed: use :meth:`gradient`)."""
        if self.batch_grad_fn is None:
            return None
        with self.timed("compute"):
            model.zero_grad(set_to_none=True)
            stats = self.batch_grad_fn(workers, model)
        if stats is None:
            return None
        self.worker_stats.extend(stats)
        return flat.grads(model)

    def update(self, replica: Replica) -> None:
        """Step ``replica`` with the gradients now in its model."""
        with self.timed("compute"):
            self.apply_update(replica)
