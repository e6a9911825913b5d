"""The epoch loop, and the seam where synchronisation strategies plug in.

The pieces, smallest first (a strategy reuses them, it never copies them):

* :func:`asr_trainer.train.sampler.make_train_sampler` ``(cuts, data_cfg, rank, world_size, seed)``:
  the sampler of worker ``rank``; every worker takes the same number of steps per epoch.
* :class:`asr_trainer.train.replica.Replica` (model + optimizer + LR scheduler), built by
  :func:`asr_trainer.train.replica.build_replica`; build ``N`` of them for ``N`` simulated workers.
* :func:`asr_trainer.train.step.forward_backward` ``(model, batch, device, bf16) -> BatchStats``:
  leaves gradients in ``.grad`` and does not step.
* :func:`asr_trainer.train.step.apply_update` ``(replica, clip_norm) -> grad_norm``: clips, steps, zeroes.
* A **step function** ``step_fn(replica, batch) -> (BatchStats, grad_norm)`` does one optimizer
  step of this worker. :func:`default_step` is ``forward_backward`` + ``apply_update``; a strategy
  passes its own (e.g. forward_backward, all-reduce / GTC-exchange the grads, apply_update;
  or for BMUF: local step, and a block update every ``block_size`` calls).
  A step function reports ``ok=False`` (NaN/inf loss or gradient) to have the step counted as skipped.
* :func:`train_epoch` ``(replica, batches, step_fn, ...)`` runs one epoch over any iterable of
  batches and counts skipped steps; more than ``max_skip_fraction`` of them raises
  :class:`UserError`. :func:`validate` computes the dev loss without touching gradients.

:mod:`asr_trainer.train.fit` composes these for the single-worker baseline.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from asr_trainer.errors import UserError
from asr_trainer.models import CtcModel
from asr_trainer.train.replica import Replica
from asr_trainer.train.step import BatchStats, apply_update, batch_loss, forward_backward

log = logging.getLogger(__name__)

StepFn = Callable[[Replica, dict], tuple[BatchStats, float]]
OnStep = Callable[[int, BatchStats, float], None]

FRAME_SHIFT_S = 0.01


def default_step(device: torch.device | str = "cpu", bf16: bool = False, clip_norm: float = 5.0) -> StepFn:
    """The single-worker step: :func:`forward_backward` then :func:`apply_update`."""

    def step(replica: Replica, batch: dict) -> tuple[BatchStats, float]:
        stats = forward_backward(replica.model, batch, device, bf16)
        if not stats.ok:
            replica.optimizer.zero_grad(set_to_none=True)
            return stats, float("nan")
        norm = apply_update(replica, clip_norm)
        stats.ok = norm == norm and norm != float("inf")
        return stats, norm

    return step


@dataclass
class EpochResult:
    """Totals of one epoch: ``stats`` over good steps, ``steps`` taken, ``skipped`` of them, wall ``seconds``."""

    stats: BatchStats = field(default_factory=BatchStats)
    steps: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def real_time_factor(self) -> float:
        """Seconds of audio trained per wall second."""
        return self.stats.input_frames * FRAME_SHIFT_S / max(self.seconds, 1e-9)


def train_epoch(
    replica: Replica,
    batches: Iterable[dict],
    step_fn: StepFn,
    max_skip_fraction: float = 0.01,
    on_step: OnStep | None = None,
    start_step: int = 0,
    progress: bool = False,
    desc: str = "train",
) -> EpochResult:
    """One pass over ``batches``; ``on_step(global_step, stats, grad_norm)`` after each step.

    Steps whose ``stats.ok`` is False are counted as skipped and logged. Raises
    :class:`UserError` after the epoch when ``skipped / steps > max_skip_fraction``.
    """
    result = EpochResult()
    start = time.perf_counter()
    for batch in tqdm(batches, desc=desc, disable=not progress, leave=False):
        stats, norm = step_fn(replica, batch)
        result.steps += 1
        if stats.ok:
            result.stats += stats
        else:
            result.skipped += 1
            log.warning("skipped batch %d (non-finite loss or gradient; cuts %s...)",
                        start_step + result.steps, ",".join(batch["cut_ids"][:3]))
        if on_step is not None:
            on_step(start_step + result.steps, stats, norm)
    result.seconds = time.perf_counter() - start
    check_skips(result, max_skip_fraction)
    return result


def check_skips(result: EpochResult, max_skip_fraction: float) -> None:
    """Raise :class:`UserError` when too many steps of the epoch were skipped."""
    if result.steps and result.skipped / result.steps > max_skip_fraction:
        raise UserError(
            f"{result.skipped} of {result.steps} batches had a NaN/inf loss or gradient "
            f"(> max_skip_fraction={max_skip_fraction:g}); training stopped. Lower optim.lr or "
            f"clip_norm, or check the features for corrupt values."
        )


@torch.no_grad()
def validate(model: CtcModel, batches: Iterable[dict], device: torch.device | str = "cpu", bf16: bool = False) -> BatchStats:
    """Summed CTC loss over ``batches`` in eval mode (non-finite batches are left out)."""
    model.eval()
    total = BatchStats()
    for batch in batches:
        _, stats = batch_loss(model, batch, device, bf16)
        if stats.ok:
            total += stats
    model.train()
    return total
