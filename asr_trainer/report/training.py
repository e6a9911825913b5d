"""How much each run trained: its optimizer updates and dev-loss curve, from ``train-summary.json``.

The trainer writes one row per finished epoch (``steps``: optimizer steps of the epoch,
``valid_loss``: CTC loss per output frame on the dev set after it; see
:mod:`asr_trainer.train.trainer`). A report row shows the updates and the last dev loss, so a
reader sees at once whether a run was under-trained; the report's plot draws every curve.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

SUMMARY = "train-summary.json"


@dataclass(frozen=True)
class TrainingCurve:
    """``points``: (updates so far, dev loss per output frame) after each epoch, in order."""

    points: tuple[tuple[int, float], ...] = ()

    @property
    def updates(self) -> int:
        """Optimizer updates of the whole run (0 when nothing was recorded)."""
        return self.points[-1][0] if self.points else 0

    @property
    def final_dev_loss(self) -> float | None:
        """Dev loss after the last epoch, None when nothing was recorded."""
        return self.points[-1][1] if self.points else None


def load_training(exp_dir: Path) -> TrainingCurve:
    """The run's :class:`TrainingCurve`; an empty one (logged) without ``train-summary.json``."""
    path = Path(exp_dir) / SUMMARY
    if not path.is_file():
        log.info("%s: no %s; its updates and dev loss are not reported", Path(exp_dir).name, SUMMARY)
        return TrainingCurve()
    try:
        epochs = json.loads(path.read_text(encoding="utf-8"))["epochs"]
        updates, points = 0, []
        for row in epochs:
            updates += int(row["steps"])
            points.append((updates, float(row["valid_loss"])))
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a train-summary.json of asr-trainer ({e})") from None
    return TrainingCurve(tuple(points))
