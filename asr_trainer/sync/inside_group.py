"""Synchronisation inside a group, every step: the rule's Protocol, local steps and dense all-reduce.

Each rule's ``step(ctx, states)`` trains the hosted groups ``states`` for one
step: after it, all members of a group hold the same model again. A rule owns
whatever state it keeps across steps and serialises it itself
(``state_dict``/``load_state_dict``), so a new rule needs no edit of the
strategy. GTC, the rule with state, is :class:`asr_trainer.sync.gtc_sync.GtcSync`.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch

from asr_trainer.sync import flat_vectors as flat
from asr_trainer.sync.comm import Group, local_sum
from asr_trainer.sync.step_context import GroupState, StepContext


class InsideGroupRule(Protocol):
    """What a strategy needs of the rule it runs inside every group."""

    def step(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        """One synchronised step of every hosted group in ``states``."""

    def state_dict(self) -> dict[str, Any]:
        """The rule's own state for an exact resume (``{}`` for a stateless rule)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""


class Stateless:
    """A rule that keeps nothing across steps."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise KeyError(f"a stateless rule was given state {sorted(state)}: another sync setting?")


class LocalSync(Stateless):
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


class DenseSync(Stateless):
    """Mean gradient over a group (``span``; None: each state's own group), then one step each."""

    def __init__(self, span: Group | None = None) -> None:
        self.span = span

    def step(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        parts = [(self.span, list(states))] if self.span else [(gs.group, [gs]) for gs in states]
        for group, members in parts:
            if len(members) == 1 and self._batched(ctx, group, members[0]):
                continue
            bufs = SharedBuffers(members)
            partial = local_sum(
                bufs.run(gs, lambda: ctx.gradient(w, gs.model)) for gs in members for w in gs.members
            )
            mean = ctx.comm.all_reduce_mean(group, partial)
            bufs.average(ctx, group)
            for gs in members:
                flat.set_grads(gs.model, mean)
                ctx.update(gs.replica)

    @staticmethod
    def _batched(ctx: StepContext, group: Group, gs: GroupState) -> bool:
        """The step of a group hosted whole in ``gs`` through one batched forward/backward; False (nothing
        done, buffers as before) when the batched path declines. The all-reduces are metered as usual."""
        if len(gs.members) != group.size:
            return False
        start = flat.buffers(gs.model)
        total = ctx.summed_gradient(list(gs.members), gs.model)
        if total is None:
            if start.numel():
                flat.set_buffers(gs.model, start)
            return False
        mean = ctx.comm.all_reduce_mean(group, total)
        if start.numel():  # the model holds the members' mean buffers: the all-reduce is counted, not needed
            flat.set_buffers(gs.model, ctx.comm.all_reduce_mean(group, flat.buffers(gs.model).mul_(group.size)))
        flat.set_grads(gs.model, mean)
        ctx.update(gs.replica)
        return True
