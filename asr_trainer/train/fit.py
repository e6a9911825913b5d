"""Single-worker training from start (or from the latest checkpoint) to the last epoch.

Composes the pieces of :mod:`asr_trainer.train.loop`; the distributed
strategies compose the same pieces differently.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset.sampling.base import CutSampler

from asr_trainer.data.manifests import manifest_path
from asr_trainer.errors import UserError
from asr_trainer.models import CtcModel, ModelConfig, num_parameters
from asr_trainer.train import checkpoint as ckpt
from asr_trainer.train import fault
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.dataset import Encode, filter_ctc_feasible
from asr_trainer.train.loop import EpochResult, default_step, train_epoch, validate
from asr_trainer.train.metrics import Metrics
from asr_trainer.train.replica import Replica, build_replica
from asr_trainer.train.sampler import make_loader, make_train_sampler, make_valid_sampler
from asr_trainer.train.step import BatchStats

log = logging.getLogger(__name__)


def load_cuts(cuts_dir: Path, corpus: str, split: str) -> CutSet:
    """``<cuts_dir>/<corpus>_cuts_<split>.jsonl.gz``, eagerly; a missing file is a :class:`UserError`."""
    path = manifest_path(Path(cuts_dir), corpus, "cuts", split)
    if not path.is_file():
        raise UserError(f"cut manifest not found: {path} (run the features stage, or check data.corpus)")
    return CutSet.from_file(path).to_eager()


def output_frames_fn(model: CtcModel):
    """``num_input_frames -> num_output_frames`` of ``model``."""
    return lambda n: int(model.output_lengths(torch.tensor([n]))[0])


def prepare_cuts(cfg: TrainConfig, model: CtcModel, encode: Encode, train_cuts: CutSet,
                 valid_cuts: CutSet) -> tuple[CutSet, CutSet, int, int]:
    """``data.max_train_cuts`` and the CTC length filter: (train, valid, removed train, removed valid)."""
    frames = output_frames_fn(model)
    if cfg.data.max_train_cuts:
        train_cuts = train_cuts.subset(first=min(cfg.data.max_train_cuts, len(train_cuts)))
    train_cuts, removed = filter_ctc_feasible(train_cuts, encode, frames)
    valid_cuts, valid_removed = filter_ctc_feasible(valid_cuts, encode, frames)
    return train_cuts, valid_cuts, removed, valid_removed


@dataclass
class Position:
    """Where training stands: the epoch being (or to be) trained and optimizer steps done.

    ``rng``: RNG states to restore right before the next batch is drawn (a
    mid-epoch resume: the data loader's iterator draws a seed when it is
    created, which the uninterrupted run did before the checkpoint).
    """

    epoch: int = 1
    step: int = 0
    mid_epoch: bool = False
    rng: dict | None = None


def resume(exp_dir: Path, replica: Replica, sampler: CutSampler) -> Position:
    """Restore the latest complete checkpoint in ``exp_dir`` into ``replica``/``sampler``/RNGs, if any."""
    ckpt.remove_partial_files(exp_dir)
    found = ckpt.load_latest(exp_dir)
    if found is None:
        return Position()
    path, state = found
    replica.load_state_dict(state["replica"])
    mid_epoch = bool(ckpt.STEP_RE.match(path.name))
    if mid_epoch:
        sampler.load_state_dict(copy.deepcopy(state["sampler"]))  # lhotse consumes the dict it is given
    else:
        ckpt.restore_rng(state["rng"])
    log.info("resuming from %s (epoch %d, step %d)", path.name, state["epoch"], state["step"])
    return Position(epoch=state["epoch"] + (0 if mid_epoch else 1), step=state["step"], mid_epoch=mid_epoch,
                    rng=state["rng"] if mid_epoch else None)


def save_complete(exp_dir: Path, name: str, state: dict, keep_last: int, pattern) -> None:
    """Write checkpoint ``name``, point ``latest.json`` at it, then prune older ones of its kind (in that order)."""
    ckpt.save_checkpoint(exp_dir / name, state)
    ckpt.mark_complete(exp_dir, [name], state["epoch"], state["step"], bool(ckpt.STEP_RE.match(name)))
    ckpt.prune_checkpoints(exp_dir, keep_last, pattern)


def batches_from(loader, rng: dict | None):
    """Iterate ``loader``; ``rng`` (if given) is restored after its iterator exists, before the first batch."""
    it = iter(loader)
    if rng is not None:
        ckpt.restore_rng(rng)
    return it


def checkpoint_state(replica: Replica, sampler: CutSampler, pos: Position, model_cfg: ModelConfig, extra: dict) -> dict:
    """Everything needed to resume exactly, plus what decoding needs to rebuild the model."""
    return {
        "replica": replica.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": ckpt.rng_state(),
        "epoch": pos.epoch,
        "step": pos.step,
        "model_config": dataclasses.asdict(model_cfg),
        "num_outputs": replica.model.num_outputs,
        "meta": extra,
    }


def fit(cfg: TrainConfig, model_cfg: ModelConfig, exp_dir: Path, encode: Encode, num_outputs: int,
        train_cuts: CutSet, valid_cuts: CutSet) -> dict:
    """Train for ``cfg.num_epochs`` epochs; writes checkpoints, TensorBoard and ``train-summary.json``.

    Returns the summary dict (cuts removed, steps skipped, losses, real-time factor per epoch).
    """
    exp_dir = Path(exp_dir)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    ckpt.seed_all(cfg.seed)  # SpecAugment draws from python's random, dropout from torch
    device = torch.device(cfg.device)
    replica = build_replica(model_cfg, cfg, num_outputs, device)
    log.info("model %s: %d parameters, %d outputs", model_cfg.kind, num_parameters(replica.model), num_outputs)
    train_cuts, valid_cuts, removed, valid_removed = prepare_cuts(cfg, replica.model, encode, train_cuts, valid_cuts)
    sampler = make_train_sampler(train_cuts, cfg.data, rank=0, world_size=1, seed=cfg.seed)
    pos = resume(exp_dir, replica, sampler)
    metrics = Metrics(exp_dir)
    summary = {"removed_train_cuts": removed, "removed_valid_cuts": valid_removed, "epochs": []}
    step_fn = default_step(device, cfg.bf16, cfg.clip_norm)
    try:
        while pos.epoch <= cfg.num_epochs:
            summary["epochs"].append(run_epoch(cfg, model_cfg, exp_dir, replica, sampler, pos, step_fn,
                                               encode, valid_cuts, metrics, summary))
            pos = Position(epoch=pos.epoch + 1, step=pos.step)
    finally:
        metrics.close()
        (exp_dir / "train-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_epoch(cfg: TrainConfig, model_cfg: ModelConfig, exp_dir: Path, replica: Replica, sampler: CutSampler,
              pos: Position, step_fn, encode: Encode, valid_cuts: CutSet, metrics: Metrics, summary: dict) -> dict:
    """Train one epoch, validate, save ``epoch-N.pt``; returns the epoch's summary row."""
    if not pos.mid_epoch:
        sampler.set_epoch(pos.epoch)
    loader = make_loader(sampler, encode, cfg.data, train=True)
    meta = {"removed_train_cuts": summary["removed_train_cuts"]}

    def on_step(step: int, stats: BatchStats, norm: float) -> None:
        pos.step = step
        if stats.ok and step % cfg.log_every == 0:
            metrics.scalars(step, {"loss": stats.loss_per_frame, "lr": replica.scheduler.get_last_lr()[0],
                                   "grad_norm": norm})
        if cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0:
            save_complete(exp_dir, f"checkpoint-{step}.pt", checkpoint_state(replica, sampler, pos, model_cfg, meta),
                          cfg.checkpoint.keep_last, ckpt.STEP_RE)
        fault.maybe_fail(step, (0,))

    result = train_epoch(replica, batches_from(loader, pos.rng), step_fn, cfg.max_skip_fraction, on_step, pos.step,
                         cfg.progress_bar, desc=f"epoch {pos.epoch}")
    valid = validate(replica.model, make_loader(make_valid_sampler(valid_cuts, cfg.data), encode, cfg.data, False),
                     cfg.device, cfg.bf16)
    row = epoch_row(pos.epoch, result, valid)
    metrics.scalars(pos.step, {"frames_per_second": result.stats.input_frames / max(result.seconds, 1e-9),
                               "real_time_factor": result.real_time_factor, "epoch_loss": row["train_loss"]})
    metrics.scalars(pos.step, {"loss": row["valid_loss"]}, prefix="valid")
    log.info("epoch %d: train loss %.4f, valid loss %.4f, %d steps (%d skipped), %.0fx real time",
             pos.epoch, row["train_loss"], row["valid_loss"], result.steps, result.skipped, result.real_time_factor)
    save_complete(exp_dir, f"epoch-{pos.epoch}.pt", checkpoint_state(replica, sampler, pos, model_cfg, meta),
                  cfg.checkpoint.keep_last, ckpt.EPOCH_RE)
    return row


def epoch_row(epoch: int, result: EpochResult, valid: BatchStats) -> dict:
    """The per-epoch line of ``train-summary.json``."""
    return {
        "epoch": epoch, "steps": result.steps, "skipped": result.skipped,
        "train_loss": result.stats.loss_per_frame, "valid_loss": valid.loss_per_frame,
        "seconds": round(result.seconds, 3), "real_time_factor": round(result.real_time_factor, 1),
    }
