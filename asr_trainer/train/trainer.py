"""The trainer: ``N`` logical workers under a synchronisation strategy; the baseline is ``N = 1``, ``sync none``.

:func:`fit` is given a communicator: :class:`~asr_trainer.sync.SimCommunicator`
(all ``N`` workers in this process; the 1-worker baseline is ``SimCommunicator(1)``)
or :class:`~asr_trainer.sync.DistCommunicator` (one worker per process, torchrun).
Everything else is one code path: worker ``w`` reads lhotse's shard ``w`` of ``N``
with its own RNG (:mod:`asr_trainer.data.workers`); the strategy
(:func:`~asr_trainer.sync.build_strategy`) owns every optimizer step.

Per step every worker loads its next batch; the step runs only if all of them
have one, so no worker ever waits on a collective another will not join. A
NaN/inf loss or gradient makes that worker contribute a zero gradient (the one
rule for non-finite batches); skipped batches are summed over all workers and
more than ``max_skip_fraction`` stops training with a :class:`UserError` on
every worker at the same epoch end.

Per epoch: the open BMUF block is closed (every replica agrees), the lead process
(global rank 0) validates the global model, logs, and every process takes part in
a checkpoint (:mod:`asr_trainer.checkpoint`): ``epoch-N.pt`` (decodable, averageable)
plus each process's state; also every ``checkpoint.every_steps`` global steps, and
on Ctrl-C or SIGTERM (a scheduler's preemption, torchrun's shutdown) before stopping.
The run's statistics (``train-summary.json``, ``sync_stats.json``) are part of that
state, so they cover the whole run across resumes.

Where a run starts: an exp dir is held by one run (:class:`~asr_trainer.train.lock.ExpDirLock`);
one with checkpoints is refused without ``resume``; with it, the run goes on from
:func:`~asr_trainer.checkpoint.find_resume_point` exactly as if it had not stopped,
after checking the model and sync settings are the run's. Nothing is written before
these checks pass; a finished run given again changes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import yaml
from lhotse import CutSet
from tqdm import tqdm

from asr_trainer import checkpoint as ckpt
from asr_trainer.data.cuts import mean_duration, trainable_cuts
from asr_trainer.data.dataset import Encode
from asr_trainer.data.sampler import make_loader, make_valid_sampler
from asr_trainer.data.workers import WorkerData, WorkerRng
from asr_trainer.errors import Interrupted, UserError
from asr_trainer.models import ModelConfig
from asr_trainer.rng import restore_rng, rng_state, seed_all
from asr_trainer.sync import Communicator, SyncConfig, SyncStrategy, build_strategy
from asr_trainer.sync import flat_vectors as flat
from asr_trainer.sync.config import workers_per_step
from asr_trainer.sync.replica import clipped_step
from asr_trainer.train import fault
from asr_trainer.train.batched import batched_forward_backward
from asr_trainer.train.build import batch_scaled, build_replica
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.epoch import EpochResult, check_skips, validate
from asr_trainer.train.estimate import eta_seconds, format_duration
from asr_trainer.train.lock import ExpDirLock
from asr_trainer.train.metrics import Metrics
from asr_trainer.train.step import BatchStats, forward_backward, grad_norm

log = logging.getLogger(__name__)

SUMMARY = "train-summary.json"
SYNC_STATS = "sync_stats.json"


@dataclass
class RunProgress:
    """The trainer's own counters, saved in every checkpoint.

    ``step``: global steps done; ``rows``: ``train-summary.json`` rows of the finished
    epochs; ``partial``: the running epoch's totals at a mid-epoch checkpoint.
    """

    step: int = 0
    rows: list[dict] = field(default_factory=list)
    partial: EpochResult | None = None

    def state_dict(self, partial: EpochResult | None = None) -> dict:
        """The counters, with ``partial`` as the running epoch's totals (None at an epoch end)."""
        return {"step": self.step, "rows": [dict(r) for r in self.rows],
                "partial": None if partial is None else partial.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`."""
        self.step, self.rows = state["step"], [dict(r) for r in state["rows"]]
        self.partial = None if state["partial"] is None else EpochResult.from_state(state["partial"])


@dataclass
class Run:
    """One run between epochs: settings, strategy, data, where files go, and its counters."""

    cfg: TrainConfig
    model_cfg: ModelConfig
    exp_dir: Path
    comm: Communicator
    strategy: SyncStrategy
    data: WorkerData
    encode: Encode
    valid_cuts: CutSet
    settings: ckpt.RunSettings
    removed: tuple[int, int]  # train and valid cuts the CTC filter removed
    progress: RunProgress = field(default_factory=RunProgress)
    metrics: Metrics | None = None
    stop: "StopRequest | None" = None

    @property
    def lead(self) -> bool:
        """True in the process hosting global rank 0 (it validates and writes the shared files)."""
        return 0 in self.comm.hosted

    @property
    def place(self) -> ckpt.Place:
        """This process's place in the checkpoint files (one file set per process)."""
        single = len(self.comm.hosted) == self.comm.world_size
        ranks = (None,) if single else tuple(range(self.comm.world_size))
        return ckpt.Place(None if single else self.comm.hosted[0], ranks, self.lead)

    def summary(self) -> dict:
        """``train-summary.json``: the run, cuts removed, one row per finished epoch (the whole run)."""
        return {"sync": self.strategy.summary.strategy, "workers": self.comm.world_size,
                "removed_train_cuts": self.removed[0], "removed_valid_cuts": self.removed[1],
                "epochs": [dict(r) for r in self.progress.rows]}


def fit(cfg: TrainConfig, model_cfg: ModelConfig, sync_cfg: SyncConfig, comm: Communicator, exp_dir: Path,
        encode: Encode, num_outputs: int, train_cuts: CutSet, valid_cuts: CutSet, resume: bool = False,
        on_start: Callable[[], None] | None = None) -> dict:
    """Train ``cfg.num_epochs`` epochs of ``comm``'s workers under ``sync_cfg``; returns ``train-summary.json``'s dict.

    ``train_cuts``: best read lazily (:func:`~asr_trainer.data.cuts.load_cuts` ``lazy=True``), the
    sampler streams them. ``resume``: go on from the latest complete checkpoint of ``exp_dir`` (without it, an exp dir
    with checkpoints is refused). ``on_start``: called on every process once the run is accepted
    (locked, checked, nothing written yet), e.g. to open the log file.
    """
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    with locked(exp_dir, comm):
        if not resume and any_worker(comm, 0 in comm.hosted and ckpt.has_checkpoints(exp_dir)):
            raise UserError(f"{exp_dir} already has checkpoints of a run: pass --resume to continue it, "
                            "or use a new --exp-dir")
        run = start_run(cfg, model_cfg, sync_cfg, comm, exp_dir, encode, num_outputs, train_cuts, valid_cuts)
        point = ckpt.find_resume_point(exp_dir, comm, run.place) if resume else None
        if point is not None:
            check_settings(run, point.state.settings)
        if on_start is not None:
            on_start()
        first, mid_epoch = restore(run, point) if point is not None else (1, False)
        if first > cfg.num_epochs:
            log.info("%s: all %d epochs are trained already", exp_dir, cfg.num_epochs)
        else:
            train_epochs(run, first, mid_epoch, sync_cfg)
        write_outputs(run)
    return run.summary()


def train_epochs(run: Run, first: int, mid_epoch: bool, sync_cfg: SyncConfig) -> None:
    """Epochs ``first..num_epochs`` (``mid_epoch``: the first goes on from a mid-epoch checkpoint)."""
    if run.lead:
        write_settings(run.exp_dir, run.cfg, run.model_cfg, sync_cfg)
    run.metrics = Metrics(run.exp_dir, enabled=run.lead)
    try:
        with stop_on_signals() as run.stop:
            for epoch in range(first, run.cfg.num_epochs + 1):
                run_epoch(run, epoch, restored=mid_epoch and epoch == first)
    finally:
        run.metrics.close()
        if run.lead:  # also after a failure: the epochs finished so far
            write_if_changed(run.exp_dir / SUMMARY, json.dumps(run.summary(), indent=2) + "\n")


def write_outputs(run: Run) -> None:
    """``train-summary.json`` and ``sync_stats.json`` of the whole run (lead; unchanged files are not rewritten)."""
    stats = world_sync_stats(run.strategy)
    if run.lead:
        write_if_changed(run.exp_dir / SUMMARY, json.dumps(run.summary(), indent=2) + "\n")
        write_if_changed(run.exp_dir / SYNC_STATS, json.dumps(stats, indent=2) + "\n")


def start_run(cfg: TrainConfig, model_cfg: ModelConfig, sync_cfg: SyncConfig, comm: Communicator, exp_dir: Path,
              encode: Encode, num_outputs: int, train_cuts: CutSet, valid_cuts: CutSet) -> Run:
    """Build the strategy (misconfiguration fails here, before any step), the workers' data and RNGs."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_all(cfg.seed)  # the same initial model in every process; rank 0's is broadcast anyway
    device = torch.device(cfg.device)
    scaled = step_batch_lr(cfg, sync_cfg, comm.world_size, lambda: mean_duration(train_cuts))  # train.yaml keeps cfg's
    strategy = build_strategy(sync_cfg, comm, lambda: build_replica(model_cfg, scaled, num_outputs, device),
                              functools.partial(clipped_step, clip_norm=cfg.clip_norm))
    model = strategy.model
    frames = lambda n: int(model.output_lengths(torch.tensor([n]))[0])  # noqa: E731 (input -> output frames)
    cuts = trainable_cuts(train_cuts, valid_cuts, encode, frames, cfg.data.max_train_cuts)
    data = WorkerData(cuts.train, cfg.data, encode, comm.hosted, comm.world_size, cfg.seed,
                      WorkerRng(cfg.seed, comm.hosted), cuts.num_train)
    log.info("sync %s: %d workers (%d here), model %s with %d parameters, %d train cuts",
             sync_cfg.name, comm.world_size, len(comm.hosted), model_cfg.kind, strategy.summary.params, cuts.num_train)
    settings = ckpt.RunSettings(dataclasses.asdict(model_cfg), dataclasses.asdict(sync_cfg), comm.world_size,
                                num_outputs)
    return Run(cfg, model_cfg, exp_dir, comm, strategy, data, encode, cuts.valid, settings, cuts.removed)


def step_batch_lr(cfg: TrainConfig, sync_cfg: SyncConfig, world_size: int,
                  mean_cut: Callable[[], float]) -> TrainConfig:
    """``cfg`` with the learning rate scaled for the batch of one optimizer step (``optim.lr_scaling``):
    ``workers_per_step`` worker batches of :meth:`DataConfig.batch_audio` seconds each. ``mean_cut``: the
    training cuts' mean duration in seconds (read only when a ``max_cuts`` batch needs it)."""
    if cfg.optim.lr_scaling == "none":
        return cfg
    per_worker = cfg.data.batch_audio(mean_cut() if cfg.data.max_cuts else 0.0)
    step_batch = per_worker * workers_per_step(sync_cfg, world_size)
    optim = batch_scaled(cfg.optim, step_batch)
    log.info("learning rate %.3g: %s scaling of %.3g for %.1f s of audio per optimizer step against %.0f s",
             optim.lr, cfg.optim.lr_scaling, cfg.optim.lr, step_batch, cfg.optim.reference_batch)
    return dataclasses.replace(cfg, optim=optim)


def check_settings(run: Run, saved: ckpt.RunSettings) -> None:
    """Refuse (every process alike) to resume a run with other model or sync settings or workers."""
    difference = saved.difference(run.settings)
    if difference is not None:
        raise UserError(f"cannot resume {run.exp_dir}: {difference} (a resume keeps the run's settings; "
                        "use a new --exp-dir for other ones)")


def restore(run: Run, point: ckpt.ResumePoint) -> tuple[int, bool]:
    """Load this process's part of ``point``: the first epoch to train, and whether it is under way."""
    state = point.state
    run.strategy.load_state_dict(state.strategy)
    run.data.load_state_dict(state.data, samplers=state.mid_epoch)
    restore_rng(state.rng)
    run.progress.load_state_dict(state.progress)
    log.info("resuming from %s (epoch %d, global step %d)", point.pointer.files[0], state.epoch, state.step)
    return state.epoch + (0 if state.mid_epoch else 1), state.mid_epoch


def make_grad_fn(run: Run):
    """``grad_fn(worker, model)``: forward/backward of ``worker``'s prefetched batch under its RNG.

    A non-finite loss or gradient leaves a zero gradient, the buffers (BatchNorm
    statistics) as they were before the batch, and returns ``ok=False``.
    """
    device, bf16 = run.cfg.device, run.cfg.bf16

    def grad_fn(worker: int, model: torch.nn.Module) -> BatchStats:
        batch = run.data.take(worker)
        buffers = flat.buffers(model)
        with run.data.rng.active(worker):  # dropout draws here
            stats = forward_backward(model, batch, device, bf16)
        if not stats.ok or not math.isfinite(grad_norm(model)):
            model.zero_grad(set_to_none=True)
            flat.set_buffers(model, buffers)
            stats.ok = False
            log.warning("worker %d: non-finite loss or gradient on cuts %s...; it contributes a zero gradient",
                        worker, ",".join(batch["cut_ids"][:3]))
        return stats

    return grad_fn


def make_batch_grad_fn(run: Run):
    """``batch_grad_fn(workers, model)`` for :meth:`SyncStrategy.step`: the workers' one-utterance batches in
    one forward/backward (:func:`~asr_trainer.train.batched.batched_forward_backward`), dropout drawn under the
    first worker's RNG; None, nothing taken, where it declines or the gradient is not finite. None when
    ``batched_dense`` is off."""
    if not run.cfg.batched_dense:
        return None
    device, bf16 = run.cfg.device, run.cfg.bf16

    def batch_grad_fn(workers: list[int], model: torch.nn.Module) -> list[BatchStats] | None:
        batches = [run.data.peek(w) for w in workers]
        with run.data.rng.active(workers[0]):
            stats = batched_forward_backward(model, batches, device, bf16)
        if stats is None or not math.isfinite(grad_norm(model)):
            model.zero_grad(set_to_none=True)
            return None
        for w in workers:
            run.data.take(w)
        return stats

    return batch_grad_fn


def run_epoch(run: Run, epoch: int, restored: bool = False) -> None:
    """Train, close the block, check skips, validate, save: one epoch of every hosted worker.

    ``restored``: the epoch goes on from a mid-epoch checkpoint (samplers already positioned).
    """
    local = run.progress.partial if restored and run.progress.partial is not None else EpochResult()
    run.progress.partial = None
    run.data.start_epoch(epoch, restored)
    train_steps(run, epoch, local)
    run.strategy.close_block()
    result = world_epoch_result(run.comm, local)
    check_skips(EpochResult(steps=result.steps * run.comm.world_size, skipped=result.skipped),
                run.cfg.max_skip_fraction)
    model = end_epoch(run, epoch, result)
    save(run, epoch, None, model)


def train_steps(run: Run, epoch: int, local: EpochResult) -> None:
    """Steps until a worker runs out of batches, adding to ``local``; checkpoints, Ctrl-C and the fault hook."""
    grad_fn, batch_grad_fn = make_grad_fn(run), make_batch_grad_fn(run)
    every = run.cfg.checkpoint.every_steps
    start = time.perf_counter() - local.seconds
    bar = tqdm(desc=f"epoch {epoch}", disable=not (run.cfg.progress_bar and run.lead), leave=False)
    while not any_worker(run.comm, not run.data.prefetch()):  # someone ran out: all stop
        stats = run.strategy.step(grad_fn, batch_grad_fn)
        run.progress.step += 1
        local.steps += 1
        bar.update(1)
        for s in stats.worker_stats:
            if s.ok:
                local.stats += s
            else:
                local.skipped += 1
        if run.progress.step % run.cfg.log_every == 0:
            log_step(run, stats.worker_stats)
        stop = any_worker(run.comm, run.stop is not None and run.stop.requested)
        local.seconds = time.perf_counter() - start
        if stop or (every and run.progress.step % every == 0):
            save(run, epoch, local, None)
        if stop:
            raise Interrupted(f"stopped after global step {run.progress.step} (epoch {epoch}) and saved a "
                              f"checkpoint: continue with the same command and --resume")
        fault.maybe_fail(run.progress.step, run.comm.hosted)
    bar.close()
    local.seconds = time.perf_counter() - start


def save(run: Run, epoch: int, partial: EpochResult | None, model: torch.nn.Module | None) -> None:
    """A complete checkpoint of every process; collective.

    ``partial``: the running epoch's totals (mid-epoch, ``checkpoint-<step>.pt``); None at the
    epoch end (``epoch-N.pt`` of ``model``, the validated global model; None: take it from the strategy).
    """
    step = run.progress.step
    state = ckpt.ProcessState(epoch, step, partial is not None, run.settings, run.strategy.state_dict(),
                              run.data.state_dict(), rng_state(), run.progress.state_dict(partial))
    model_file = None
    if run.lead:
        model = model if model is not None else run.strategy.global_model()
        meta = {"sync": run.strategy.summary.strategy, "workers": run.comm.world_size,
                "removed_train_cuts": run.removed[0]}
        model_file = ckpt.ModelFile(model.state_dict(), dataclasses.asdict(run.model_cfg), model.num_outputs,
                                    epoch, step, meta)
    ckpt.save_set(run.exp_dir, run.comm, run.place, state, model_file, run.cfg.checkpoint.keep_last)


def log_step(run: Run, worker_stats) -> None:
    """TensorBoard scalars of a step (lead only): loss of the hosted workers, lr, sync statistics."""
    if not run.lead:
        return
    good = BatchStats()
    for s in worker_stats:
        if s.ok:
            good += s
    values = {"loss": good.loss_per_frame, "lr": run.strategy.learning_rate()}
    values.update(run.strategy.scalars())
    run.metrics.scalars(run.progress.step, values)


def end_epoch(run: Run, epoch: int, result: EpochResult) -> torch.nn.Module | None:
    """Lead: validate the global model, log, add the epoch's row; returns that model (None elsewhere)."""
    if not run.lead:
        run.progress.rows.append({"epoch": epoch, "steps": result.steps, "skipped": result.skipped})
        return None
    cfg = run.cfg
    model = run.strategy.global_model()
    valid = validate(model, make_loader(make_valid_sampler(run.valid_cuts, cfg.data), run.encode, cfg.data, False),
                     cfg.device, cfg.bf16)
    row = epoch_row(epoch, result, valid)
    run.progress.rows.append(row)
    run.metrics.scalars(run.progress.step, {
        "epoch_loss": row["train_loss"], "real_time_factor": result.real_time_factor,
        "frames_per_second": result.stats.input_frames / max(result.seconds, 1e-9)})
    run.metrics.scalars(run.progress.step, {"loss": row["valid_loss"]}, prefix="valid")
    left = eta_seconds([r["seconds"] for r in run.progress.rows], cfg.num_epochs - epoch)
    log.info("epoch %d/%d: train loss %.4f, valid loss %.4f, %d steps x %d workers (%d batches skipped), "
             "%.0fx real time, %s; about %s left", epoch, cfg.num_epochs, row["train_loss"], row["valid_loss"],
             result.steps, run.comm.world_size, result.skipped, result.real_time_factor,
             format_duration(result.seconds), format_duration(left))
    return model


def epoch_row(epoch: int, result: EpochResult, valid: BatchStats) -> dict:
    """The per-epoch line of ``train-summary.json`` (losses per output frame, seconds of the lead)."""
    return {
        "epoch": epoch, "steps": result.steps, "skipped": result.skipped,
        "train_loss": result.stats.loss_per_frame, "valid_loss": valid.loss_per_frame,
        "seconds": round(result.seconds, 3), "real_time_factor": round(result.real_time_factor, 1),
    }


def any_worker(comm: Communicator, flag: bool) -> bool:
    """True on every process when ``flag`` is True in at least one (``flag``: of all workers hosted here)."""
    return float(comm.all_reduce_max(torch.tensor([float(flag)], dtype=torch.float64))[0]) > 0.0


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
    """``sync_stats.json``: the summary with bytes and times averaged over all processes; collective.

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


@contextmanager
def locked(exp_dir: Path, comm: Communicator) -> Iterator[None]:
    """Hold ``exp_dir``'s lock (the lead process) for the block; refused on every process alike."""
    lock = ExpDirLock(exp_dir)
    error = None
    if 0 in comm.hosted:
        try:
            lock.acquire()
        except UserError as e:
            error = str(e)
    if any_worker(comm, error is not None):
        raise UserError(error or f"{exp_dir} is in use by another run (see the error of global rank 0)")
    try:
        yield
    finally:
        lock.release()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; a scheduler's preemption or torchrun's shutdown


class StopRequest:
    """Set by the first stop signal (SIGINT or SIGTERM); the trainer then saves a checkpoint after the step and
    stops. A second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        log.warning("%s: stopping after this step with a checkpoint (a second signal stops at once)", name)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest | None]:
    """A :class:`StopRequest` installed as the handler of :data:`STOP_SIGNALS` for the block (None off the
    main thread, where signals cannot be handled)."""
    request = StopRequest()
    previous = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, request)
    except ValueError:  # not the main thread
        yield None
        return
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def write_settings(exp_dir: Path, cfg: TrainConfig, model_cfg: ModelConfig, sync_cfg: SyncConfig) -> None:
    """The run's settings as YAML beside the checkpoints (``train.yaml``, ``model.yaml``, ``sync.yaml``)."""
    for name, settings in (("train", cfg), ("model", model_cfg), ("sync", sync_cfg)):
        write_if_changed(exp_dir / f"{name}.yaml", yaml.safe_dump(dataclasses.asdict(settings), sort_keys=False))


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it holds exactly that already (a re-run changes nothing)."""
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
