"""A synchronisation strategy: groups of workers, a rule inside groups, BMUF across them.

=========  ======================  =================  ==================
strategy   groups                  inside a group     across groups
=========  ======================  =================  ==================
none       N groups of 1           local step         --
allreduce  1 group of N            dense all-reduce   --
gtc        1 group of N            GTC                --
bmuf       N groups of 1           local step         BMUF, eta 1 - 1/sqrt(N)
hybrid     N/g groups of g         GTC (g > 1)        BMUF, eta 1 - 1/sqrt(N/g)
=========  ======================  =================  ==================

(eta by the default ``block_momentum: sqrt``; ``g`` by ``group_size``, default ``auto``.)

so hybrid with ``g = 1`` is BMUF and with ``g = N`` is GTC by construction.
One step::

    strategy = build_strategy(cfg, SimCommunicator(8), make_replica)
    for _ in range(steps):
        stats = strategy.step(grad_fn)        # grad_fn(worker, model) -> anything
    strategy.close_block()                    # the open BMUF block, if any: every replica agrees
    model = strategy.global_model()           # what to validate and decode
    strategy.summary.dump("exp/x/sync_stats.json")

Memory per process: one replica per hosted group (1 for all-reduce/GTC, N for
BMUF, N/g for the hybrid when simulated), plus one residual per hosted GTC worker.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch

from asr_trainer.errors import UserError
from asr_trainer.sync import flat_vectors as flat
from asr_trainer.sync.bmuf import Bmuf
from asr_trainer.sync.comm import Communicator, Group
from asr_trainer.sync.config import (AllReduceConfig, BmufConfig, GtcConfig, HybridConfig, NoSyncConfig, SyncConfig,
                                     hybrid_group_size)
from asr_trainer.sync.step_context import BatchGradFn, GradFn, GroupState, StepContext
from asr_trainer.sync.gtc_sync import GtcSync
from asr_trainer.sync.inside_group import DenseSync, InsideGroupRule, LocalSync
from asr_trainer.sync.replica import ReplicaFactory, UpdateFn, clipped_step
from asr_trainer.sync.stats import StepStats, SyncSummary


class SyncStrategy:
    """Owns the hosted replicas, their optimizer steps and all communication."""

    def __init__(self, name: str, comm: Communicator, groups: Sequence[Group], intra: InsideGroupRule, bmuf: Bmuf | None,
                 warmup_steps: int, replica_factory: ReplicaFactory, apply_update: UpdateFn = clipped_step) -> None:
        self.comm = comm
        self.intra = intra
        self.bmuf = bmuf
        self.warmup_steps = warmup_steps
        self.apply_update = apply_update
        comm.register(list(groups) + ([bmuf.reps] if bmuf else []))
        self.states = [GroupState(g, replica_factory(), comm.hosted_in(g)) for g in groups if comm.hosted_in(g)]
        self._align_initial_models()
        self.summary = SyncSummary(name, comm.world_size, groups[0].size, hosted_workers=len(comm.hosted),
                                   params=sum(p.numel() for p in self.model.parameters()),
                                   block_size=bmuf.cfg.block_size if bmuf is not None else None)
        self.step_count = 0
        self._closed_at: int | None = None  # step count of the last close_block
        if bmuf and warmup_steps == 0:
            bmuf.start(self.states, comm.hosted)

    @property
    def model(self) -> torch.nn.Module:
        """The model of the first group hosted here (rank 0's in a simulation)."""
        return self.states[0].model

    def step(self, grad_fn: GradFn, batch_grad_fn: BatchGradFn | None = None) -> StepStats:
        """One training step of every hosted worker, synchronised; returns its statistics.

        ``batch_grad_fn``: a batched forward/backward of several hosted workers, which dense all-reduce
        uses where it can (the simulated cluster; see :class:`~asr_trainer.sync.inside_group.DenseSync`).
        """
        self.comm.reset_meters()
        ctx = StepContext(self.comm, grad_fn, self.apply_update, batch_grad_fn)
        in_warmup = self.step_count < self.warmup_steps
        (DenseSync(self.comm.world) if in_warmup else self.intra).step(ctx, self.states)
        self.step_count += 1
        block_sync = self._block_due()
        if block_sync:
            self.bmuf.sync(ctx, self.states)
        elif self.bmuf and self.step_count == self.warmup_steps:
            self.bmuf.start(self.states, self.comm.hosted)
        stats = self._stats(ctx, block_sync)
        self.summary.add(stats)
        return stats

    def close_block(self) -> None:
        """Run the BMUF sync of an open block now, so every replica agrees (an epoch end); collective.

        Idempotent: a second call without steps in between does nothing. No-op without BMUF.
        """
        if self._closed_at == self.step_count:
            return
        self._closed_at = self.step_count
        if self.bmuf and self.step_count > self.warmup_steps and not self._block_due():
            ctx = StepContext(self.comm, lambda w, m: None, self.apply_update)
            self.bmuf.sync(ctx, self.states)

    def global_model(self) -> torch.nn.Module:
        """A copy of the model to validate and decode: ``W_g`` under BMUF (meaningful right after
        :meth:`close_block`), else the (synchronised) model of the first hosted group."""
        model = copy.deepcopy(self.model)
        w_g = self.bmuf.w_g if self.bmuf is not None else None
        if w_g is not None:
            flat.set_params(model, w_g)
        return model

    def learning_rate(self) -> float:
        """The current learning rate of the first hosted group's optimizer (every group follows one schedule)."""
        return self.states[0].replica.optimizer.param_groups[0]["lr"]

    def scalars(self) -> dict[str, float]:
        """TensorBoard values of the latest step: :meth:`SyncSummary.scalars`, BMUF's ``||Delta||_2`` when held here."""
        values = self.summary.scalars()
        delta = self.bmuf.delta if self.bmuf is not None else None
        if delta is not None:
            values["sync/block_momentum_norm"] = float(delta.norm())
        return values

    def state_dict(self) -> dict:
        """Everything an exact resume needs of the groups hosted here.

        ``step_count`` (the position within the BMUF block follows from it), per
        hosted group its ranks, hosted ``members`` and ``replica`` (model, optimizer,
        scheduler); ``intra``: the inside-group rule's own state (GTC residuals, taus,
        twin optimizers); ``bmuf`` (``W_g``, ``Delta``, ``eta``) or None.
        """
        groups = [{"ranks": gs.group.ranks, "members": list(gs.members), "replica": gs.replica.state_dict()}
                  for gs in self.states]
        return {"step_count": self.step_count, "closed_at": self._closed_at, "summary": self.summary.state_dict(),
                "world_size": self.comm.world_size, "hosted": list(self.comm.hosted),
                "groups": groups, "intra": self.intra.state_dict(),
                "bmuf": None if self.bmuf is None else self.bmuf.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`; the same workers must be hosted here (else :class:`UserError`)."""
        if state["world_size"] != self.comm.world_size or list(state["hosted"]) != list(self.comm.hosted):
            raise UserError(f"checkpoint of workers {state['hosted']} of {state['world_size']} cannot resume "
                            f"workers {list(self.comm.hosted)} of {self.comm.world_size}: use the same number")
        for gs, saved in zip(self.states, state["groups"], strict=True):
            if tuple(saved["ranks"]) != gs.group.ranks:
                raise UserError(f"checkpoint group {saved['ranks']} != {gs.group.ranks}: another sync setting?")
            gs.replica.load_state_dict(saved["replica"])
        if "intra" not in state:
            raise UserError("checkpoint has no inside-group rule state ('intra'): written by an older version")
        try:
            self.intra.load_state_dict(state["intra"])
        except KeyError as err:
            raise UserError(f"checkpoint and sync setting disagree on the inside-group rule ({err}): another --sync?")
        if (self.bmuf is None) != (state["bmuf"] is None):
            raise UserError("checkpoint and sync setting disagree on BMUF: another --sync?")
        if self.bmuf is not None:
            self.bmuf.load_state_dict(state["bmuf"])
        self.step_count = state["step_count"]
        self._closed_at = state["closed_at"]
        self.summary.load_state_dict(state["summary"])

    def _block_due(self) -> bool:
        past = self.step_count - self.warmup_steps
        return self.bmuf is not None and past > 0 and past % self.bmuf.cfg.block_size == 0

    def _align_initial_models(self) -> None:
        """Every replica starts from the first worker's parameters and buffers."""
        first = self.states[0].model
        n = sum(p.numel() for p in first.parameters())
        state = self.comm.broadcast(self.comm.world, torch.cat([flat.params(first), flat.buffers(first)]))
        for gs in self.states:
            flat.set_params(gs.model, state[:n])
            flat.set_buffers(gs.model, state[n:])

    def _stats(self, ctx: StepContext, block_sync: bool) -> StepStats:
        t = self.comm.traffic
        hosted = len(self.comm.hosted)
        return StepStats(
            step=self.step_count,
            bytes_sent=sum(t.sent.values()) / hosted,
            bytes_received=sum(t.received.values()) / hosted,
            payload_bytes=sum(t.payload.values()) / hosted,
            density=sum(ctx.densities) / len(ctx.densities) if ctx.densities else None,
            compute_s=ctx.seconds["compute"],
            encode_decode_s=ctx.seconds["encode_decode"],
            communicate_s=t.seconds,
            block_sync=block_sync,
            dropped=ctx.dropped,
            worker_stats=tuple(ctx.worker_stats),
        )


def build_strategy(cfg: SyncConfig, comm: Communicator, replica_factory: ReplicaFactory,
                   apply_update: UpdateFn = clipped_step) -> SyncStrategy:
    """The strategy ``cfg`` over ``comm``'s workers; misconfiguration raises UserError first."""
    n = comm.world_size
    singles = [Group((r,)) for r in range(n)]
    world = [comm.world]
    if isinstance(cfg, NoSyncConfig):
        parts = (singles, LocalSync(), None, 0)
    elif isinstance(cfg, AllReduceConfig):
        parts = (world, DenseSync(), None, 0)
    elif isinstance(cfg, GtcConfig):
        parts = (world, GtcSync(cfg), None, 0)
    elif isinstance(cfg, BmufConfig):
        parts = (singles, LocalSync(), _bmuf(cfg, singles), cfg.warmup_steps)
    elif isinstance(cfg, HybridConfig):
        g = hybrid_group_size(cfg, n)
        if g > 1 and cfg.gtc.threshold_on == "update" and cfg.bmuf.optimizer_state != "keep":
            raise UserError(f"sync bmuf.optimizer_state={cfg.bmuf.optimizer_state} needs gtc.threshold_on=gradient: "
                            "with update thresholding each worker's own optimizer state is GTC's, not BMUF's")
        groups = hybrid_groups(n, g)
        intra = GtcSync(cfg.gtc) if g > 1 else LocalSync()
        parts = (groups, intra, _bmuf(cfg.bmuf, groups), cfg.bmuf.warmup_steps)
    else:
        raise UserError(f"unknown sync strategy {cfg!r}")
    groups, intra, bmuf, warmup = parts
    return SyncStrategy(cfg.name, comm, groups, intra, bmuf, warmup, replica_factory, apply_update)


def hybrid_groups(world_size: int, group_size: int) -> list[Group]:
    """Consecutive ranks in groups of ``group_size``, which must divide ``world_size``."""
    if group_size < 1 or world_size % group_size:
        raise UserError(f"sync group_size={group_size} must divide the number of workers ({world_size})")
    return [Group(tuple(range(s, s + group_size))) for s in range(0, world_size, group_size)]


def _bmuf(cfg: BmufConfig, groups: list[Group]) -> Bmuf | None:
    """BMUF across ``groups``, or None with a single group (then it is the identity)."""
    return Bmuf(cfg, groups) if len(groups) > 1 else None
