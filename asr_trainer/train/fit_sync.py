"""Training under a synchronisation strategy: ``N`` logical workers, one code path.

:func:`fit_sync` is given a communicator: :class:`~asr_trainer.sync.SimCommunicator`
(all ``N`` workers in this process, ``--simulate-workers N``) or
:class:`~asr_trainer.sync.DistCommunicator` (one worker per process, torchrun).
Everything else is the same: worker ``w`` reads lhotse's shard ``w`` of ``N``
with its own RNG (:mod:`asr_trainer.train.workers`); the strategy
(:func:`~asr_trainer.sync.build_strategy`) owns every optimizer step through the
trainer's :func:`~asr_trainer.train.step.apply_update`.

Per step every worker loads its next batch; the step runs only if all of them
have one (a 1-element all-reduce), so no worker ever waits on a collective
another one will not join. A NaN/inf loss or gradient makes that worker
contribute a zero gradient (consistent on every worker); skipped batches are
summed over all workers and more than ``max_skip_fraction`` stops training with
a :class:`UserError` on every worker at the same epoch end.

Per epoch: the open BMUF block is closed (a block sync, so all replicas agree),
then the lead worker (global rank 0) validates the global model (``W_g`` under
BMUF / hybrid), writes TensorBoard scalars and ``epoch-N.pt`` in the baseline's
format (``asr-trainer decode`` and averaging work unchanged); every process
writes its strategy state (:mod:`asr_trainer.train.sync_state`). At the end:
``sync_stats.json`` (means over all workers) and ``train-summary.json``.

Checkpoints and resume: at every epoch end, and every ``checkpoint.every_steps``
global steps, each process writes its strategy state (replicas, GTC residuals,
BMUF ``W_g``/``Delta``, step count, its workers' sampler positions and RNGs),
all meet (barrier), the lead writes the model file (``epoch-N.pt`` /
``checkpoint-<step>.pt``) and points ``latest.json`` at the complete set, all
meet again, then old files are pruned. ``resume=True`` (``--resume``, implied by
a torchrun restart) continues from ``latest.json`` exactly as if the run had not
stopped; without it an exp dir that already has checkpoints is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from lhotse import CutSet

from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig, num_parameters
from asr_trainer.sync import Communicator, SyncConfig, SyncStrategy, build_strategy, flat
from asr_trainer.train import checkpoint as ckpt
from asr_trainer.train import fault
from asr_trainer.train import sync_state
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.dataset import Encode
from asr_trainer.train.fit import Position, checkpoint_state, epoch_row, prepare_cuts
from asr_trainer.train.loop import EpochResult, check_skips, validate
from asr_trainer.train.metrics import Metrics
from asr_trainer.train.replica import build_replica
from asr_trainer.train.sampler import make_loader, make_valid_sampler
from asr_trainer.train.step import BatchStats, apply_update, forward_backward, grad_norm
from asr_trainer.train.workers import WorkerData, WorkerRng

log = logging.getLogger(__name__)


@dataclass
class SyncRun:
    """One synchronised run between epochs: its settings, strategy, data and counters."""

    cfg: TrainConfig
    model_cfg: ModelConfig
    exp_dir: Path
    comm: Communicator
    strategy: SyncStrategy
    data: WorkerData
    rng: WorkerRng
    encode: Encode
    valid_cuts: CutSet
    metrics: Metrics
    summary: dict = field(default_factory=dict)
    step: int = 0
    closed_at: int | None = None
    partial: EpochResult | None = None  # totals of the epoch a mid-epoch checkpoint was resumed in

    @property
    def lead(self) -> bool:
        """True in the process hosting global rank 0 (it validates and writes the shared files)."""
        return 0 in self.comm.hosted

    @property
    def file_rank(self) -> int | None:
        """Rank in per-process file names; None in a simulation (one process holds everything)."""
        return None if len(self.comm.hosted) == self.comm.world_size else self.comm.hosted[0]


def fit_sync(cfg: TrainConfig, model_cfg: ModelConfig, sync_cfg: SyncConfig, comm: Communicator, exp_dir: Path,
             encode: Encode, num_outputs: int, train_cuts: CutSet, valid_cuts: CutSet, resume: bool = False) -> dict:
    """Train ``cfg.num_epochs`` epochs of ``comm``'s workers under ``sync_cfg``; returns ``train-summary.json``'s dict.

    ``resume``: continue from the latest complete checkpoint of ``exp_dir`` (a fresh start when there is none).
    """
    run = start_run(cfg, model_cfg, sync_cfg, comm, Path(exp_dir), encode, num_outputs, train_cuts, valid_cuts,
                    resume)
    first = restore_run(run) if resume else Position()
    try:
        for epoch in range(first.epoch, cfg.num_epochs + 1):
            run.summary["epochs"].append(sync_epoch(run, epoch, restored=first.mid_epoch and epoch == first.epoch))
    finally:
        run.metrics.close()
        if run.lead:
            (run.exp_dir / "train-summary.json").write_text(json.dumps(run.summary, indent=2) + "\n")
    stats = world_sync_stats(run.strategy)
    if run.lead:
        (run.exp_dir / "sync_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return run.summary


def start_run(cfg: TrainConfig, model_cfg: ModelConfig, sync_cfg: SyncConfig, comm: Communicator, exp_dir: Path,
              encode: Encode, num_outputs: int, train_cuts: CutSet, valid_cuts: CutSet, resume: bool = False) -> SyncRun:
    """Build the strategy (misconfiguration fails here, before any step), the workers' data and RNGs."""
    if not resume and any_worker(comm, 0 in comm.hosted and has_checkpoints(exp_dir)):
        raise UserError(f"{exp_dir} already has checkpoints of a run: pass --resume to continue it, "
                        "or use a new --exp-dir")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)  # the same initial model in every process; rank 0's is broadcast anyway
    device = torch.device(cfg.device)
    strategy = build_strategy(sync_cfg, comm, lambda: build_replica(model_cfg, cfg, num_outputs, device),
                              functools.partial(apply_update, clip_norm=cfg.clip_norm))
    params = num_parameters(strategy.model)
    strategy.summary.hosted_workers = len(comm.hosted)
    strategy.summary.params = params
    strategy.summary.block_size = strategy.bmuf.cfg.block_size if strategy.bmuf is not None else None
    train_cuts, valid_cuts, removed, valid_removed = prepare_cuts(cfg, strategy.model, encode, train_cuts, valid_cuts)
    rng = WorkerRng(cfg.seed, comm.hosted)
    data = WorkerData(train_cuts, cfg.data, encode, comm.hosted, comm.world_size, cfg.seed, rng)
    log.info("sync %s: %d workers (%d here), model %s with %d parameters, %d train cuts",
             sync_cfg.name, comm.world_size, len(comm.hosted), model_cfg.kind, params, len(train_cuts))
    summary = {"sync": sync_cfg.name, "workers": comm.world_size, "removed_train_cuts": removed,
               "removed_valid_cuts": valid_removed, "epochs": []}
    return SyncRun(cfg, model_cfg, exp_dir, comm, strategy, data, rng, encode, valid_cuts,
                   Metrics(exp_dir, enabled=0 in comm.hosted), summary)


def has_checkpoints(exp_dir: Path) -> bool:
    """True when ``exp_dir`` holds model checkpoints or a ``latest.json`` of an earlier run."""
    return (bool(ckpt.list_checkpoints(exp_dir, ckpt.EPOCH_RE) or ckpt.list_checkpoints(exp_dir, ckpt.STEP_RE))
            or (Path(exp_dir) / ckpt.LATEST).is_file())


def restore_run(run: SyncRun) -> Position:
    """Load this process's part of the latest complete checkpoint; where training goes on from."""
    if run.lead:
        ckpt.remove_partial_files(run.exp_dir)
    entry = ckpt.latest_complete(run.exp_dir)
    step = -1 if entry is None else entry["step"]
    agreed = run.comm.all_reduce_mean(run.comm.world, torch.tensor([float(step) * len(run.comm.hosted)],
                                                                    dtype=torch.float64))
    if float(agreed[0]) != step:
        raise UserError(f"the processes see different latest checkpoints in {run.exp_dir} (is it shared?)")
    if entry is None:
        log.info("no complete checkpoint in %s: starting from scratch", run.exp_dir)
        return Position()
    mid_epoch = entry["mid_epoch"]
    path = sync_state.strategy_path(run.exp_dir, f"step{step}" if mid_epoch else entry["epoch"], run.file_rank)
    state = ckpt.load_checkpoint(path)
    sync_state.load_strategy_state(run.strategy, run.data, state, mid_epoch)
    run.step, run.closed_at = state["step"], state["trainer"]["closed_at"]
    partial = state["trainer"]["partial"]
    run.partial = EpochResult(BatchStats(**partial["stats"]), partial["steps"], partial["skipped"]) if mid_epoch else None
    log.info("resuming from %s (epoch %d, global step %d)", entry["files"][0], entry["epoch"], step)
    return Position(entry["epoch"] + (0 if mid_epoch else 1), step, mid_epoch)


def make_grad_fn(run: SyncRun):
    """``grad_fn(worker, model)``: forward/backward of ``worker``'s prefetched batch under its RNG.

    A non-finite loss or gradient leaves a zero gradient, the buffers (BatchNorm
    statistics) as they were before the batch, and returns ``ok=False``.
    """
    device, bf16 = run.cfg.device, run.cfg.bf16

    def grad_fn(worker: int, model: torch.nn.Module) -> BatchStats:
        batch = run.data.take(worker)
        buffers = flat.buffers(model)
        with run.rng.active(worker):  # dropout draws here
            stats = forward_backward(model, batch, device, bf16)
        if not stats.ok or not math.isfinite(grad_norm(model)):
            model.zero_grad(set_to_none=True)
            flat.set_buffers(model, buffers)
            stats.ok = False
            log.warning("worker %d: non-finite loss or gradient on cuts %s...; it contributes a zero gradient",
                        worker, ",".join(batch["cut_ids"][:3]))
        return stats

    return grad_fn


def sync_epoch(run: SyncRun, epoch: int, restored: bool = False) -> dict:
    """Train one epoch on every hosted worker, close the block, validate and save; the summary row.

    ``restored``: the epoch goes on from a mid-epoch checkpoint (samplers already positioned).
    """
    run.data.start_epoch(epoch, restored)
    grad_fn = make_grad_fn(run)
    local = run.partial if restored and run.partial is not None else EpochResult()
    start = time.perf_counter()
    every = run.cfg.checkpoint.every_steps
    while not any_worker(run.comm, not run.data.prefetch()):  # someone ran out: all stop
        stats = run.strategy.step(grad_fn)
        run.step += 1
        local.steps += 1
        for s in stats.worker_stats:
            if s.ok:
                local.stats += s
            else:
                local.skipped += 1
        if run.step % run.cfg.log_every == 0:
            log_step(run, stats.worker_stats)
        if every and run.step % every == 0:
            save_sync_checkpoint(run, epoch, local, None)
        fault.maybe_fail(run.step, run.comm.hosted)
    run.closed_at = sync_state.close_block(run.strategy, run.closed_at)
    local.seconds = time.perf_counter() - start
    result = world_epoch_result(run.comm, local)
    check_skips(EpochResult(steps=result.steps * run.comm.world_size, skipped=result.skipped), run.cfg.max_skip_fraction)
    row, model = end_epoch(run, epoch, result)
    save_sync_checkpoint(run, epoch, None, model)
    return row


def save_sync_checkpoint(run: SyncRun, epoch: int, partial: EpochResult | None,
                         model: torch.nn.Module | None) -> None:
    """Write a complete checkpoint of every process (see module doc); collective.

    ``partial``: the running epoch's totals for a mid-epoch checkpoint (``checkpoint-<step>.pt``);
    None at the epoch end (``epoch-N.pt`` of ``model``, the validated global model).
    """
    mid_epoch = partial is not None
    tag = f"step{run.step}" if mid_epoch else epoch
    extra = {"closed_at": run.closed_at, "partial": None if partial is None else {
        "stats": dataclasses.asdict(partial.stats), "steps": partial.steps, "skipped": partial.skipped}}
    sync_state.save_strategy_state(run.exp_dir, sync_state.strategy_state(run.strategy, run.data, epoch, run.step, extra),
                                   run.file_rank, tag)
    any_worker(run.comm, False)  # barrier: every rank's part is on disk
    if run.lead:
        name = f"checkpoint-{run.step}.pt" if mid_epoch else f"epoch-{epoch}.pt"
        ckpt.save_checkpoint(run.exp_dir / name, lead_checkpoint_state(run, epoch, model))
        ranks = [None] if run.file_rank is None else list(range(run.comm.world_size))
        ckpt.mark_complete(run.exp_dir, [name] + [sync_state.strategy_path(run.exp_dir, tag, r).name for r in ranks],
                           epoch, run.step, mid_epoch)
        ckpt.prune_checkpoints(run.exp_dir, run.cfg.checkpoint.keep_last, ckpt.STEP_RE if mid_epoch else ckpt.EPOCH_RE)
    any_worker(run.comm, False)  # barrier: latest.json names the new checkpoint
    sync_state.prune_strategy_states(run.exp_dir, run.file_rank, run.cfg.checkpoint.keep_last)


def lead_checkpoint_state(run: SyncRun, epoch: int, model: torch.nn.Module | None) -> dict:
    """The model file in the baseline's format (``model``: the global model; None: take it from the strategy)."""
    model = model if model is not None else sync_state.global_model(run.strategy)
    replica = run.strategy.states[0].replica
    state = checkpoint_state(replica, run.data.samplers[0], Position(epoch, run.step), run.model_cfg,
                             {"removed_train_cuts": run.summary["removed_train_cuts"], "sync": run.summary["sync"],
                              "workers": run.comm.world_size})
    state["replica"]["model"] = model.state_dict()
    return state


def log_step(run: SyncRun, worker_stats) -> None:
    """TensorBoard scalars of a step (lead only): loss of the hosted workers, lr, sync statistics."""
    if not run.lead:
        return
    good = BatchStats()
    for s in worker_stats:
        if s.ok:
            good += s
    values = {"loss": good.loss_per_frame, "lr": run.strategy.states[0].replica.scheduler.get_last_lr()[0]}
    values.update(run.strategy.summary.scalars())
    norm = sync_state.block_momentum_norm(run.strategy)
    if norm is not None:
        values["sync/block_momentum_norm"] = norm
    run.metrics.scalars(run.step, values)


def end_epoch(run: SyncRun, epoch: int, result: EpochResult) -> tuple[dict, torch.nn.Module | None]:
    """Lead only: validate the global model and log; every process gets the row, the lead also the model."""
    if not run.lead:
        return {"epoch": epoch, "steps": result.steps, "skipped": result.skipped}, None
    cfg = run.cfg
    model = sync_state.global_model(run.strategy)
    valid = validate(model, make_loader(make_valid_sampler(run.valid_cuts, cfg.data), run.encode, cfg.data, False),
                     cfg.device, cfg.bf16)
    row = epoch_row(epoch, result, valid)
    run.metrics.scalars(run.step, {"epoch_loss": row["train_loss"], "real_time_factor": result.real_time_factor})
    run.metrics.scalars(run.step, {"loss": row["valid_loss"]}, prefix="valid")
    log.info("epoch %d: train loss %.4f, valid loss %.4f, %d steps x %d workers (%d batches skipped), %.0fx real time",
             epoch, row["train_loss"], row["valid_loss"], result.steps, run.comm.world_size, result.skipped,
             result.real_time_factor)
    return row, model


def any_worker(comm: Communicator, flag: bool) -> bool:
    """True on every process when ``flag`` is True in at least one (``flag``: of all workers hosted here)."""
    partial = torch.tensor([float(flag) * len(comm.hosted)], dtype=torch.float64)
    return float(comm.all_reduce_mean(comm.world, partial)[0]) > 0.0


def world_epoch_result(comm: Communicator, local: EpochResult) -> EpochResult:
    """Sum the hosted workers' epoch totals over all processes; steps and seconds are the lead's."""
    s = local.stats
    vec = torch.tensor([s.loss_sum, s.frames, s.input_frames, s.utterances, local.skipped], dtype=torch.float64)
    total = comm.all_reduce_mean(comm.world, vec).mul_(comm.world_size)
    loss_sum, frames, input_frames, utterances, skipped = total.tolist()
    stats = BatchStats(loss_sum, round(frames), round(input_frames), round(utterances))
    return EpochResult(stats=stats, steps=local.steps, skipped=round(skipped), seconds=local.seconds)


MEAN_KEYS = ("bytes_sent_per_worker_per_step", "bytes_received_per_worker_per_step",
             "payload_bytes_per_worker_per_step")


def world_sync_stats(strategy: SyncStrategy) -> dict:
    """``sync_stats.json``: the summary with bytes and times averaged over all processes.

    Bytes are per worker; times are per process (totals over its ``hosted_workers``),
    as :mod:`asr_trainer.report.collect` reads them.
    """
    comm = strategy.comm
    d = strategy.summary.as_dict()
    times = d["time_per_step_s"]
    density = d["gtc_density"]
    vec = torch.tensor([d[k] for k in MEAN_KEYS] + list(times.values()) + [density or 0.0], dtype=torch.float64)
    mean = comm.all_reduce_mean(comm.world, vec * len(comm.hosted))  # equal workers per process
    values = mean.tolist()
    for k, v in zip(MEAN_KEYS, values):
        d[k] = v
    d["time_per_step_s"] = dict(zip(times, values[len(MEAN_KEYS):-1]))
    d["gtc_density"] = values[-1] if density is not None else None
    return d
