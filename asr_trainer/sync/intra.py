"""Synchronisation inside a group, every step: local, dense all-reduce, or GTC.

Each rule's ``step(ctx, states)`` trains the hosted groups ``states`` for one
step: after it, all members of a group hold the same model again.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch

from asr_trainer.sync import flat
from asr_trainer.sync.codec import encode
from asr_trainer.sync.comm import Group, local_sum
from asr_trainer.sync.config import GtcConfig
from asr_trainer.sync.context import GroupState, StepContext
from asr_trainer.sync.gtc import accumulate_and_threshold, adapt_tau, aggregate_payloads, as_float32
from asr_trainer.sync.replica import Replica, copy_hyperparameters, twin_optimizer


class LocalSync:
    """Groups of one: each worker steps its own replica with its own gradient."""

    def step(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        for gs in states:
            for w in gs.members:
                ctx.backward(w, gs.model)
                ctx.update(gs.replica)


class SharedBuffers:
    """BatchNorm statistics under one synchronised model: the mean over the group's workers.

    Each member's forward starts from the same buffers (restored before it runs
    when members share a model here); afterwards the group averages the members'
    updated buffers, like the gradients.
    """

    def __init__(self, states: Sequence[GroupState]) -> None:
        self.start = [flat.buffers(gs.model) for gs in states]
        self.states = list(states)
        self.total: torch.Tensor | None = None

    def run(self, gs: GroupState, fn):
        """``fn()`` from the step's starting buffers of ``gs``; its updated buffers are summed."""
        start = self.start[self.states.index(gs)]
        if start.numel():
            flat.set_buffers(gs.model, start)
        out = fn()
        if start.numel():
            mine = flat.buffers(gs.model)
            self.total = mine if self.total is None else self.total.add_(mine)
        return out

    def average(self, ctx: StepContext, group: Group) -> None:
        """Set every state's buffers to the group mean (a no-op without buffers)."""
        if self.total is None:
            return
        mean = ctx.comm.all_reduce_mean(group, self.total)
        for gs in self.states:
            flat.set_buffers(gs.model, mean)


class DenseSync:
    """Mean gradient over a group (``span``; None: each state's own group), then one step each."""

    def __init__(self, span: Group | None = None) -> None:
        self.span = span

    def step(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        parts = [(self.span, list(states))] if self.span else [(gs.group, [gs]) for gs in states]
        for group, members in parts:
            bufs = SharedBuffers(members)
            partial = local_sum(
                bufs.run(gs, lambda: ctx.gradient(w, gs.model)) for gs in members for w in gs.members
            )
            mean = ctx.comm.all_reduce_mean(group, partial)
            bufs.average(ctx, group)
            for gs in members:
                flat.set_grads(gs.model, mean)
                ctx.update(gs.replica)


class GtcSync:
    """Synchronous GTC inside each group (DESIGN.md section 1)."""

    def __init__(self, cfg: GtcConfig) -> None:
        self.cfg = cfg

    def step(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        for gs in states:
            bufs = SharedBuffers([gs])
            payloads = [bufs.run(gs, lambda: self._message(ctx, gs, w)) for w in gs.members]
            gathered = ctx.comm.all_gather_bytes(gs.group, payloads)
            bufs.average(ctx, gs.group)
            with ctx.timed("encode_decode"):
                total = gs.extra.setdefault("aggregate", torch.zeros_like(gs.extra["residual"][gs.members[0]]))
                agg = aggregate_payloads(gathered, total, gs.extra.setdefault("decode_workspace", {}))
            if self.cfg.threshold_on == "gradient":
                flat.set_grads(gs.model, agg)
                ctx.update(gs.replica)
            else:
                flat.set_params(gs.model, flat.params(gs.model).add_(agg))
                if gs.replica.scheduler is not None:
                    _advance_schedule(gs.replica.scheduler)

    def _message(self, ctx: StepContext, gs: GroupState, worker: int) -> torch.Tensor:
        """Add ``worker``'s contribution to its residual, threshold, encode: the payload."""
        if self.cfg.threshold_on == "gradient":
            contribution = ctx.gradient(worker, gs.model)
        else:
            contribution = self._local_update(ctx, gs, worker)
        with ctx.timed("encode_decode"):
            residuals = gs.extra.setdefault("residual", {})
            taus = gs.extra.setdefault("tau", {})
            residual = residuals.setdefault(worker, torch.zeros_like(contribution))
            tau = taus.setdefault(worker, as_float32(self.cfg.tau))
            msg = accumulate_and_threshold(residual, contribution, tau, gs.extra.setdefault("workspace", {}))
            density = msg.indices.size / max(msg.numel, 1)
            ctx.densities.append(density)
            taus[worker] = adapt_tau(tau, density, self.cfg)
            return encode(msg, self.cfg.encoding)

    def _local_update(self, ctx: StepContext, gs: GroupState, worker: int) -> torch.Tensor:
        """What ``worker``'s own optimizer (own state, the group's LR) would change, (P,); model untouched."""
        twins = gs.extra.setdefault("twin_optimizer", {})
        twin = twins.setdefault(worker, twin_optimizer(gs.replica.optimizer))
        copy_hyperparameters(gs.replica.optimizer, twin)
        before = flat.params(gs.model)
        ctx.backward(worker, gs.model)
        ctx.update(Replica(gs.model, twin))
        update = flat.params(gs.model).sub_(before)
        flat.set_params(gs.model, before)
        return update


def _advance_schedule(scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """One LR-schedule step of a shared optimizer that never steps itself (the twins apply the updates).

    torch warns on the first such step that the scheduler ran before ``optimizer.step()``; here that
    is by design, so that one warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        scheduler.step()
