#!/usr/bin/env python3
"""The scaling study's plan: its epochs and, per worker count, the settings of its runs (called by ../run.sh).

The study compares runs at the same epochs, as the paper does: at ``N`` workers a step consumes ``N``
minibatches, so an epoch has about ``1/N`` of the 1-worker baseline's steps. From the study's training
settings (``conf/train.yaml`` with the recipe's overrides: the baseline's) and the training cuts:

* ``epochs`` ``E`` (unless ``--epochs``): the smallest ``E`` whose runs all make at least ``min_updates``
  optimizer steps; the baseline trains the same ``E``. The run at the largest ``N`` binds: at one utterance
  per worker batch it makes ``ceil(cuts / N)`` steps an epoch.
* per ``N``, the per-worker batch: the baseline's ``max_duration``, capped at ``T / (N * min_batches)``
  (``T``: training audio) so every worker gets at least ``min_batches`` batches an epoch, and at
  ``T * E / (N * min_updates)`` so the run makes at least ``min_updates`` steps. A cap below the longest
  cut gives one-utterance batches (``max_cuts = 1``, ``max_duration`` the longest cut): a batch is never
  less than one cut. Under the ``min_updates`` cap the global batch ``N * max_duration`` is about the same
  at every ``N``.
* ``steps``: optimizer steps per epoch, counted with the trainer's own sampler.
* ``warmup``: the baseline's ``optim.warmup_steps`` scaled by the ratio of steps per epoch (the same
  fraction of training warms up; at least 1), unless ``--no-scale-warmup``.
* ``block``: the BMUF / hybrid block size: ``--bmuf-block`` when given, else ``ceil(steps / bmuf_syncs)``
  clamped to ``[1, 50]`` (50: the paper's example; the open block is also closed at every epoch end).

Output: one tab-separated line ``N max_duration max_cuts steps warmup block epochs`` per worker count on
stdout (for the recipe), and a readable table on stderr.

    python recipes/scaling/local/plan.py --cuts data/synth_study/fbank/synth_cuts_train.jsonl.gz \\
        --train-config conf/train.yaml --workers "32 64 128" --group-size 8 [key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from asr_trainer.errors import UserError

MAX_BLOCK = 50  # the paper's (and conf/sync/bmuf.yaml's) block size: the upper end of the automatic choice
MAX_EPOCHS = 1000  # the search for the epochs gives up beyond this (a clear error, not a loop)


@dataclass(frozen=True)
class PlanConfig:
    """How worker counts map to per-worker batches, warm-up and BMUF blocks (see module doc)."""

    min_batches: int = 8        # each worker gets at least this many batches per epoch
    min_updates: int = 500      # each run makes at least this many optimizer steps (0: no such cap)
    bmuf_syncs: int = 4         # automatic BMUF block: about this many block syncs per epoch
    bmuf_block: int = 0         # > 0: this block size at every N
    group_size: int = 8         # hybrid group size g (g must divide N)
    scale_warmup: bool = True

    def __post_init__(self) -> None:
        for name in ("min_batches", "bmuf_syncs", "group_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_updates < 0:
            raise ValueError(f"min_updates must be >= 0 (0: no cap), got {self.min_updates}")
        if self.bmuf_block < 0:
            raise ValueError(f"bmuf_block must be >= 0 (0: automatic), got {self.bmuf_block}")


@dataclass(frozen=True)
class Cell:
    """Settings of the runs at one worker count (durations in seconds; ``max_cuts`` 0: no limit)."""

    workers: int
    max_duration: float
    max_cuts: int
    steps: int
    warmup: int
    block: int


@dataclass(frozen=True)
class Corpus:
    """What the plan needs of the training cuts: ``total`` and ``longest`` in seconds, their number."""

    total: float
    longest: float
    count: int


def steps_per_epoch(cuts, data_cfg, workers: int, seed: int) -> int:
    """Batches worker 0 of ``workers`` draws in epoch 1 (every worker draws as many)."""
    from asr_trainer.data.sampler import make_train_sampler

    sampler = make_train_sampler(cuts, data_cfg, rank=0, world_size=workers, seed=seed)
    sampler.set_epoch(1)
    return sum(1 for _ in sampler)


def worker_batch(base: float, corpus: Corpus, workers: int, min_batches: int, min_updates: int = 0,
                 epochs: int = 1) -> tuple[float, int]:
    """Per-worker ``(max_duration, max_cuts)``: ``base`` seconds capped at ``total / (workers * min_batches)``
    and (``min_updates > 0``) at ``total * epochs / (workers * min_updates)``, rounded down to 0.1 s; a cap
    below the longest cut gives one-utterance batches ``(longest rounded up, 1)``."""
    cap = corpus.total / (workers * min_batches)
    if min_updates:
        cap = min(cap, corpus.total * epochs / (workers * min_updates))
    seconds = min(base, math.floor(10 * cap) / 10)
    if seconds < corpus.longest:
        return math.ceil(10 * corpus.longest) / 10, 1
    return seconds, 0


def check_workers(workers: list[int], group_size: int) -> None:
    """Every worker count is >= 2 and divisible by the hybrid group size (a clear error otherwise)."""
    if not workers:
        raise UserError("--workers is empty")
    bad = [n for n in workers if n < 2]
    if bad:
        raise UserError(f"--workers must be >= 2 (the baseline is the 1-worker run), got {bad}")
    bad = [n for n in workers if n % group_size]
    if bad:
        raise UserError(f"hybrid group size {group_size} does not divide worker counts {bad}: "
                        "pick --group-size dividing every --workers value")


def corpus_of(train_cfg, cuts) -> tuple[Corpus, object]:
    """The :class:`Corpus` of ``cuts`` as the trainer takes them (``data.max_train_cuts``), and those cuts."""
    if train_cfg.data.max_train_cuts:  # as the trainer does (asr_trainer.data.cuts.trainable_cuts)
        cuts = cuts.subset(first=min(train_cfg.data.max_train_cuts, len(cuts)))
    durations = [c.duration for c in cuts]
    if not durations:
        raise UserError("the training cuts are empty")
    return Corpus(sum(durations), max(durations), len(durations)), cuts


def cells_at(train_cfg, cuts, corpus: Corpus, workers: list[int], cfg: PlanConfig, epochs: int,
             base_steps: int) -> list[Cell]:
    """One :class:`Cell` per worker count for runs of ``epochs`` epochs."""
    cells = []
    for n in workers:
        seconds, max_cuts = worker_batch(train_cfg.data.max_duration, corpus, n, cfg.min_batches, cfg.min_updates,
                                         epochs)
        data = dataclasses.replace(train_cfg.data, max_duration=seconds, max_cuts=max_cuts)
        steps = steps_per_epoch(cuts, data, n, train_cfg.seed)
        warmup = train_cfg.optim.warmup_steps
        if cfg.scale_warmup:
            warmup = max(1, round(warmup * steps / base_steps))
        block = cfg.bmuf_block or min(MAX_BLOCK, max(1, math.ceil(steps / cfg.bmuf_syncs)))
        cells.append(Cell(n, seconds, max_cuts, steps, warmup, block))
    return cells


def choose_epochs(train_cfg, cuts, corpus: Corpus, workers: list[int], cfg: PlanConfig,
                  base_steps: int) -> tuple[int, list[Cell]]:
    """The smallest epochs whose cells all make ``cfg.min_updates`` steps, and those cells.

    The search starts where one-utterance batches at the largest ``N`` would just suffice
    (``ceil(min_updates / ceil(cuts / N))``) and goes up one epoch at a time.
    """
    if not cfg.min_updates:
        raise UserError("choosing the epochs needs --min-updates > 0 (or give --epochs)")
    epochs = max(1, math.ceil(cfg.min_updates / math.ceil(corpus.count / max(workers))))
    while epochs <= MAX_EPOCHS:
        cells = cells_at(train_cfg, cuts, corpus, workers, cfg, epochs, base_steps)
        if all(c.steps * epochs >= cfg.min_updates for c in cells):
            return epochs, cells
        epochs += 1
    raise UserError(f"no epochs up to {MAX_EPOCHS} give {cfg.min_updates} updates at {max(workers)} workers "
                    f"on {corpus.count} cuts")


def plan(train_cfg, cuts, workers: list[int], cfg: PlanConfig, epochs: int = 0) -> tuple[int, list[Cell]]:
    """The study's epochs and one :class:`Cell` per worker count (``train_cfg``: the study's training
    settings, those of its baseline; ``epochs``: 0 to choose them from ``cfg.min_updates``)."""
    check_workers(workers, cfg.group_size)
    corpus, cuts = corpus_of(train_cfg, cuts)
    base_steps = steps_per_epoch(cuts, train_cfg.data, 1, train_cfg.seed)
    if epochs:
        cells = cells_at(train_cfg, cuts, corpus, workers, cfg, epochs, base_steps)
    else:
        epochs, cells = choose_epochs(train_cfg, cuts, corpus, workers, cfg, base_steps)
    print_table(train_cfg, corpus, cells, cfg, epochs, base_steps)
    return epochs, cells


def print_table(train_cfg, corpus: Corpus, cells: list[Cell], cfg: PlanConfig, epochs: int,
                base_steps: int) -> None:
    """The plan for a reader, on stderr; a warning for each run under ``--min-updates``."""
    err = sys.stderr
    print(f"training audio {corpus.total:.0f} s in {corpus.count} cuts (longest {corpus.longest:.1f} s); "
          f"{epochs} epochs; baseline: {train_cfg.data.max_duration:g} s per batch, {base_steps} steps per epoch "
          f"({base_steps * epochs} updates), warm-up {train_cfg.optim.warmup_steps} steps", file=err)
    print(f"{'workers':>8} {'batch/worker':>13} {'steps/epoch':>12} {'total steps':>12} {'warm-up':>8} "
          f"{'bmuf block':>11} {'hybrid groups':>14}", file=err)
    for c in cells:
        batch = "1 utterance" if c.max_cuts == 1 else f"{c.max_duration:g} s"
        print(f"{c.workers:>8} {batch:>13} {c.steps:>12} {c.steps * epochs:>12} "
              f"{c.warmup:>8} {c.block:>11} {c.workers // cfg.group_size:>11} x {cfg.group_size}", file=err)
    for c in cells:
        if c.steps * epochs < cfg.min_updates:
            print(f"WARNING: {c.workers} workers make {c.steps * epochs} updates < --min-updates "
                  f"{cfg.min_updates} in {epochs} epochs even at one utterance per worker batch: more epochs "
                  "(--epochs) or a larger corpus give more", file=err)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cuts", type=Path, required=True, help="training cuts (jsonl.gz)")
    p.add_argument("--train-config", type=Path, required=True, help="the study's training settings (its baseline's)")
    p.add_argument("--workers", required=True, help='worker counts, e.g. "32 64 128"')
    p.add_argument("--min-batches", type=int, default=PlanConfig.min_batches)
    p.add_argument("--min-updates", type=int, default=PlanConfig.min_updates, help="0: no cap")
    p.add_argument("--epochs", type=int, default=0,
                   help="epochs of every run, the baseline's too (0: the fewest giving --min-updates)")
    p.add_argument("--bmuf-syncs", type=int, default=PlanConfig.bmuf_syncs)
    p.add_argument("--bmuf-block", type=int, default=PlanConfig.bmuf_block, help="0: automatic")
    p.add_argument("--group-size", type=int, default=PlanConfig.group_size)
    p.add_argument("--no-scale-warmup", action="store_true")
    p.add_argument("overrides", nargs="*", help="key=value settings over --train-config (the recipe's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from lhotse import load_manifest_lazy

    from asr_trainer.config import load_config
    from asr_trainer.train.config import TrainConfig

    args = parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split()]
    except ValueError:
        print(f"plan.py: --workers must be integers, got {args.workers!r}", file=sys.stderr)
        return 2
    try:
        cfg = PlanConfig(min_batches=args.min_batches, min_updates=args.min_updates, bmuf_syncs=args.bmuf_syncs,
                         bmuf_block=args.bmuf_block, group_size=args.group_size, scale_warmup=not args.no_scale_warmup)
        if not args.cuts.is_file():
            raise UserError(f"no training cuts at {args.cuts}")
        # model.<key>=value settings (asr-trainer train's) do not change batches or steps
        train_cfg = load_config(TrainConfig, args.train_config, [o for o in args.overrides if not o.startswith("model.")])
        epochs, cells = plan(train_cfg, load_manifest_lazy(args.cuts), workers, cfg, epochs=args.epochs)
    except (UserError, ValueError) as e:
        print(f"plan.py: {e}", file=sys.stderr)
        return 2
    for c in cells:
        print(f"{c.workers}\t{c.max_duration:g}\t{c.max_cuts}\t{c.steps}\t{c.warmup}\t{c.block}\t{epochs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
