"""A run's training speed before it trains: a few steps of its own strategy, workers, model and cuts.

``asr-trainer train ... --probe-steps K`` builds the run exactly as :func:`~asr_trainer.train.trainer.fit`
would (strategy, N logical workers, their sampler shards, the batched dense path) but in memory only: it
times ``K`` global steps after one untimed step and writes nothing to the exp dir. Recipes use it to
print how long their runs will take before the long stages start (``recipes/scaling/run.sh``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet

from asr_trainer.data.dataset import Encode
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.sync import Communicator, SyncConfig
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.epoch import FRAME_SHIFT_S
from asr_trainer.train.trainer import Run, make_batch_grad_fn, make_grad_fn, start_run


@dataclass(frozen=True)
class Probe:
    """What ``steps`` timed global steps did: ``seconds`` of wall time, ``audio_s`` seconds of audio trained
    by all workers together; ``epoch_audio_s``: seconds of audio in one epoch of the run's training cuts (before
    the CTC length filter, which drops a few)."""

    steps: int
    seconds: float
    audio_s: float
    epoch_audio_s: float

    @property
    def real_time_factor(self) -> float:
        """Seconds of audio trained per wall second."""
        return self.audio_s / self.seconds

    @property
    def epoch_seconds(self) -> float:
        """Wall seconds of one epoch at the probed speed (validation and checkpoints not counted)."""
        return self.epoch_audio_s / self.real_time_factor


def probe_run(cfg: TrainConfig, model_cfg: ModelConfig, sync_cfg: SyncConfig, comm: Communicator, encode: Encode,
              num_outputs: int, train_cuts: CutSet, valid_cuts: CutSet, steps: int) -> Probe:
    """Time ``steps`` global steps (after one untimed step) of the run ``fit`` would train; nothing is written."""
    if steps < 1:
        raise UserError(f"--probe-steps must be >= 1, got {steps}")
    run = start_run(cfg, model_cfg, sync_cfg, comm, Path("."), encode, num_outputs, train_cuts, valid_cuts)
    run.data.start_epoch(1)
    grad_fn, batch_grad_fn = make_grad_fn(run), make_batch_grad_fn(run)
    _steps(run, 1, grad_fn, batch_grad_fn)  # untimed: first-call allocations
    start = time.perf_counter()
    done, audio = _steps(run, steps, grad_fn, batch_grad_fn)
    seconds = time.perf_counter() - start
    if done < steps:
        raise UserError(f"the probe needs {steps + 1} steps, but an epoch of these cuts has only {done + 1}")
    epoch_cuts = train_cuts.subset(first=cfg.data.max_train_cuts) if cfg.data.max_train_cuts else train_cuts
    return Probe(done, seconds, audio, sum(c.duration for c in epoch_cuts))


def _steps(run: Run, steps: int, grad_fn, batch_grad_fn) -> tuple[int, float]:
    """Up to ``steps`` global steps of ``run`` (fewer when a worker runs out): (steps done, audio seconds)."""
    done, frames = 0, 0
    while done < steps and run.data.prefetch():
        stats = run.strategy.step(grad_fn, batch_grad_fn)
        frames += sum(s.input_frames for s in stats.worker_stats)
        done += 1
    return done, frames * FRAME_SHIFT_S
