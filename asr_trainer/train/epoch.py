"""One epoch's totals, the skipped-batch rule, and validation.

* :class:`EpochResult`: what an epoch trained (good-batch statistics, steps, skipped batches, seconds).
* :func:`check_skips`: more than ``max_skip_fraction`` skipped batches stops training.
* :func:`validate`: the dev loss of a model, gradients untouched.

The epoch loop itself is :func:`asr_trainer.train.trainer.fit`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

import torch

from asr_trainer.errors import UserError
from asr_trainer.models import CtcModel
from asr_trainer.train.step import BatchStats, batch_loss

FRAME_SHIFT_S = 0.01


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

    def state_dict(self) -> dict:
        """The totals as plain values (a mid-epoch checkpoint)."""
        return {"stats": dataclasses.asdict(self.stats), "steps": self.steps, "skipped": self.skipped,
                "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict) -> "EpochResult":
        """Inverse of :meth:`state_dict`."""
        return cls(BatchStats(**state["stats"]), state["steps"], state["skipped"], state["seconds"])


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
