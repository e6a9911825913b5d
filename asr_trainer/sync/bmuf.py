"""Blockwise model-update filtering across group representatives (DESIGN.md section 1).

At a block boundary, over the ``M`` representatives (first rank of each group):
``W_bar = mean W_local``; ``G = W_bar - W_g``; ``Delta = eta Delta + zeta G``;
``W_g += Delta``; restart from ``W_g + eta Delta`` (Nesterov) or ``W_g``.
``W_g`` itself is the state (never the look-ahead point). Floating-point buffers
(BatchNorm statistics) are set to their plain mean. Each representative then
broadcasts the restart point to its group. The local optimizers' state is kept,
reset, or averaged like the model (``optimizer_state``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from asr_trainer.sync import flat_vectors as flat
from asr_trainer.sync.comm import Group, local_sum
from asr_trainer.sync.config import BmufConfig, block_momentum
from asr_trainer.sync.step_context import GroupState, StepContext
from asr_trainer.sync.replica import reset_optimizer_state, set_state_vector, state_vector


class Bmuf:
    """BMUF state (``W_g``, ``Delta``) held by each representative hosted here."""

    def __init__(self, cfg: BmufConfig, groups: Sequence[Group]) -> None:
        self.cfg = cfg
        self.reps = Group(tuple(g.root for g in groups))
        members = len(groups)
        self.eta = block_momentum(cfg.block_momentum, members)
        self.zeta = cfg.block_lr
        self.w_g: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None

    def start(self, states: Sequence[GroupState], hosted: Sequence[int]) -> None:
        """Take the current (identical) model as ``W_g``; ``Delta = 0``."""
        reps = [gs for gs in states if gs.group.root in hosted]
        if reps:
            self.w_g = flat.params(reps[0].model)
            self.delta = torch.zeros_like(self.w_g)

    def state_dict(self) -> dict:
        """``W_g``, ``Delta`` (None where not held here or before :meth:`start`) and ``eta``."""
        return {"w_g": self.w_g, "delta": self.delta, "eta": self.eta}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict` (tensors are copied)."""
        self.w_g = None if state["w_g"] is None else state["w_g"].clone()
        self.delta = None if state["delta"] is None else state["delta"].clone()
        self.eta = state["eta"]

    def sync(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        """The block update among representatives, then broadcast inside each group."""
        comm = ctx.comm
        reps = [gs for gs in states if gs.group.root in comm.hosted]
        if reps:
            w_bar = comm.all_reduce_mean(self.reps, local_sum(flat.params(gs.model) for gs in reps))
            b_bar = flat.buffers(reps[0].model)
            if b_bar.numel():
                b_bar = comm.all_reduce_mean(self.reps, local_sum(flat.buffers(gs.model) for gs in reps))
            with ctx.timed("compute"):
                restart = self._filter(w_bar)
            for gs in reps:
                flat.set_params(gs.model, restart)
                flat.set_buffers(gs.model, b_bar)
        for gs in states:
            n = sum(p.numel() for p in gs.model.parameters())
            state = comm.broadcast(gs.group, torch.cat([flat.params(gs.model), flat.buffers(gs.model)]))
            flat.set_params(gs.model, state[:n])
            flat.set_buffers(gs.model, state[n:])
        self._sync_optimizer_state(ctx, states)

    def _sync_optimizer_state(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        """``optimizer_state``: keep, reset, or average the local optimizers' state over the members."""
        if self.cfg.optimizer_state == "reset":
            for gs in states:
                reset_optimizer_state(gs.replica.optimizer)
        elif self.cfg.optimizer_state == "average":
            reps = [gs for gs in states if gs.group.root in ctx.comm.hosted]
            mean = ctx.comm.all_reduce_mean(self.reps, local_sum(state_vector(gs.replica.optimizer) for gs in reps)) \
                if reps else None
            for gs in states:
                mine = mean if mean is not None else state_vector(gs.replica.optimizer)
                set_state_vector(gs.replica.optimizer, ctx.comm.broadcast(gs.group, mine))

    def _filter(self, w_bar: torch.Tensor) -> torch.Tensor:
        """Update ``Delta`` and ``W_g`` from the mean model; return the restart point."""
        assert self.w_g is not None and self.delta is not None, "Bmuf.start was not called"
        block_grad = w_bar - self.w_g
        self.delta.mul_(self.eta).add_(block_grad, alpha=self.zeta)
        self.w_g.add_(self.delta)
        if self.cfg.nesterov:
            return self.w_g + self.eta * self.delta
        return self.w_g.clone()
