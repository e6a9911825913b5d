"""Synchronous GTC inside each group (DESIGN.md section 1), with its state as typed objects.

Per step and hosted worker: its contribution (gradient, or the update its own
"twin" optimizer would make) is added to its residual and thresholded; the
group all-gathers the payloads; every member aggregates the same mean and
applies it (through the shared optimizer when thresholding gradients, straight
to the parameters when thresholding updates). All of it runs on the device of
the model (:mod:`asr_trainer.sync.gtc_kernels`).

A contribution that is not finite (NaN/inf anywhere) is dropped for that worker
and step: it never enters the residual, the worker still sends what its residual
holds above tau (so no member waits on it), and the drop is counted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from asr_trainer.sync import flat_vectors as flat
from asr_trainer.sync.config import GtcConfig
from asr_trainer.sync.step_context import GroupState, StepContext
from asr_trainer.sync.gtc import adapt_tau, as_float32, smooth_density
from asr_trainer.sync.gtc_kernels import GtcKernels, kernels_for
from asr_trainer.sync.inside_group import SharedBuffers
from asr_trainer.sync.replica import Replica, copy_hyperparameters, twin_optimizer


@dataclass
class GtcWorker:
    """One worker's GTC state: ``residual`` float32 (P,) on the model's device, its current ``tau``
    (float32-rounded), its running density (fraction of elements sent, :func:`smooth_density`; None
    before its first message) and, when thresholding updates, its own optimizer state (``twin``)."""

    residual: torch.Tensor
    tau: float
    density: float | None = None
    twin: torch.optim.Optimizer | None = None
    pending_twin_state: dict | None = None  # loaded before the twin exists; applied when it is built

    def twin_for(self, shared: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """The worker's optimizer over the group's parameters (built on first use), with ``shared``'s LR."""
        if self.twin is None:
            self.twin = twin_optimizer(shared)
            if self.pending_twin_state is not None:
                self.twin.load_state_dict(self.pending_twin_state)
                self.pending_twin_state = None
        copy_hyperparameters(shared, self.twin)
        return self.twin

    def state_dict(self) -> dict[str, Any]:
        twin = self.twin.state_dict() if self.twin is not None else self.pending_twin_state
        return {"residual": self.residual, "tau": self.tau, "density": self.density, "twin_optimizer": twin}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "GtcWorker":
        """Inverse of :meth:`state_dict`; the residual stays where it was loaded (moved on first use).
        A state saved before the running density was kept restarts it (None)."""
        return cls(state["residual"].clone(), float(state["tau"]), state.get("density"),
                   pending_twin_state=state["twin_optimizer"])


@dataclass
class GtcGroup:
    """The GTC state of the workers of one group hosted here, plus the group's reusable buffers."""

    workers: dict[int, GtcWorker] = field(default_factory=dict)
    kernels: GtcKernels | None = None
    aggregate: torch.Tensor | None = None

    def buffers_for(self, like: torch.Tensor) -> tuple[GtcKernels, torch.Tensor]:
        """The kernels of ``like``'s device and the aggregate buffer (float32 (P,)), made on first use."""
        if self.kernels is None:
            self.kernels = kernels_for(like)
            self.aggregate = torch.zeros_like(like)
        return self.kernels, self.aggregate


class GtcSync:
    """The GTC inside-group rule; owns every hosted worker's :class:`GtcWorker` (by group, then rank)."""

    def __init__(self, cfg: GtcConfig) -> None:
        self.cfg = cfg
        self.groups: dict[tuple[int, ...], GtcGroup] = {}
        self.dropped = 0  # non-finite contributions dropped so far (all hosted workers)

    def step(self, ctx: StepContext, states: Sequence[GroupState]) -> None:
        for gs in states:
            group = self.groups.setdefault(gs.group.ranks, GtcGroup())
            bufs = SharedBuffers([gs])
            payloads = [bufs.run(gs, lambda: self._message(ctx, gs, group, w)) for w in gs.members]
            gathered = ctx.comm.all_gather_bytes(gs.group, payloads)
            bufs.average(ctx, gs.group)
            with ctx.timed("encode_decode"):
                kernels, out = group.buffers_for(group.workers[gs.members[0]].residual)
                mean = kernels.aggregate(gathered, out, self.cfg.encoding)
            if self.cfg.threshold_on == "gradient":
                flat.set_grads(gs.model, mean)
                ctx.update(gs.replica)
            else:
                flat.set_params(gs.model, flat.params(gs.model).add_(mean))
                if gs.replica.scheduler is not None:
                    _advance_schedule(gs.replica.scheduler)

    def _message(self, ctx: StepContext, gs: GroupState, group: GtcGroup, rank: int) -> torch.Tensor:
        """Add worker ``rank``'s contribution to its residual, threshold, encode: the payload (uint8)."""
        worker = group.workers.get(rank)
        if worker is None:
            worker = group.workers[rank] = GtcWorker(torch.zeros_like(flat.params(gs.model)), as_float32(self.cfg.tau))
        device = next(gs.model.parameters()).device
        if worker.residual.device != device:  # loaded from a checkpoint mapped elsewhere
            worker.residual = worker.residual.to(device)
        if self.cfg.threshold_on == "gradient":
            contribution = _finite_or_none(ctx.gradient(rank, gs.model))
        else:
            contribution = self._local_update(ctx, gs, worker, rank)
        with ctx.timed("encode_decode"):
            if contribution is None:
                self.dropped += 1
                ctx.dropped += 1
            kernels, _ = group.buffers_for(worker.residual)
            msg = kernels.threshold(worker.residual, contribution, worker.tau)
            density = msg.count / max(msg.numel, 1)
            ctx.densities.append(density)
            worker.density = smooth_density(worker.density, density, self.cfg)
            worker.tau = adapt_tau(worker.tau, worker.density, self.cfg)
            return kernels.encode(msg, self.cfg.encoding)

    def _local_update(self, ctx: StepContext, gs: GroupState, worker: GtcWorker, rank: int) -> torch.Tensor | None:
        """What worker ``rank``'s own optimizer (own state, the group's LR) would change, (P,); model untouched.
        None, with the twin not stepped, when the gradient is not finite."""
        ctx.backward(rank, gs.model)
        if not _grads_finite(gs.model):
            return None
        before = flat.params(gs.model)
        ctx.update(Replica(gs.model, worker.twin_for(gs.replica.optimizer)))
        update = flat.params(gs.model).sub_(before)
        flat.set_params(gs.model, before)
        return _finite_or_none(update)

    def state_dict(self) -> dict[str, Any]:
        """``{"groups": {ranks: {rank: GtcWorker.state_dict()}}, "dropped": int}`` of the groups hosted here."""
        return {"groups": {ranks: {r: w.state_dict() for r, w in g.workers.items()} for ranks, g in self.groups.items()},
                "dropped": self.dropped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; twins are rebuilt over the group's optimizer on first use.
        Residuals go to the device of the tensors saved (the caller loads with ``map_location``)."""
        missing = {"groups", "dropped"} - set(state)
        if missing:
            raise KeyError(f"GTC state lacks {sorted(missing)}")
        self.groups = {tuple(ranks): GtcGroup({int(r): GtcWorker.from_state_dict(w) for r, w in workers.items()})
                       for ranks, workers in state["groups"].items()}
        self.dropped = int(state["dropped"])


def _finite_or_none(vec: torch.Tensor) -> torch.Tensor | None:
    """``vec`` if every element is finite, else None (:func:`flat.all_finite`)."""
    return vec if flat.all_finite(vec) else None


def _grads_finite(model: torch.nn.Module) -> bool:
    """Whether every gradient element of ``model`` is finite (missing ones count as zeros): one flat copy
    and :func:`flat.all_finite`."""
    return flat.all_finite(flat.grads(model))


def _advance_schedule(scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """One LR-schedule step of a shared optimizer that never steps itself (the twins apply the updates).

    torch warns on the first such step that the scheduler ran before ``optimizer.step()``; here that
    is by design, so that one warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        scheduler.step()
