#!/usr/bin/env python3
"""Per worker count, the settings of the scaling study's simulated runs (called by ../run.sh).

The study is data-parallel with the same epochs as the 1-worker baseline: at
``N`` workers a step consumes ``N`` minibatches, so an epoch has about ``1/N``
of the baseline's steps. Per ``N`` this script derives, from the baseline's
``train.yaml`` and the training cuts:

* ``max_duration`` (seconds of audio per worker per batch): the baseline's,
  capped at ``T / (N * min_batches)`` (``T``: training audio) so every worker
  gets at least ``min_batches`` batches per epoch, and at ``T * E / (N * min_updates)``
  (``E``: epochs) so the run makes at least ``min_updates`` optimizer steps, but
  never below the longest cut (the sampler cannot split a cut). When the longest
  cut binds, the run makes fewer updates; a warning says so (a larger corpus, e.g.
  ``--profile study``, is the remedy). Under the ``min_updates`` cap the global
  batch ``N * max_duration`` is about the same at every ``N``: the study holds the
  updates, not the per-worker batch, fixed once the corpus is too small for both.
* ``steps``: optimizer steps per epoch, counted with the trainer's own sampler.
* ``warmup``: the baseline's ``optim.warmup_steps`` scaled by the ratio of steps
  per epoch (the same fraction of training warms up; at least 1), unless
  ``--no-scale-warmup``.
* ``block``: the BMUF / hybrid block size: ``--bmuf-block`` when given, else
  ``ceil(steps / bmuf_syncs)`` clamped to ``[1, 50]`` (50: the paper's example;
  the open block is also closed at every epoch end).

Output: one tab-separated line ``N max_duration steps warmup block`` per worker
count on stdout (for the recipe), and a readable table on stderr.

    python recipes/scaling/local/plan.py --cuts data/synth_default/fbank/synth_cuts_train.jsonl.gz \\
        --train-config exp/synth_default/baseline/train.yaml --workers "32 64 128" --group-size 8
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
    """Settings of the runs at one worker count (durations in seconds)."""

    workers: int
    max_duration: float
    steps: int
    warmup: int
    block: int


def steps_per_epoch(cuts, data_cfg, workers: int, seed: int) -> int:
    """Batches worker 0 of ``workers`` draws in epoch 1 (every worker draws as many)."""
    from asr_trainer.data.sampler import make_train_sampler

    sampler = make_train_sampler(cuts, data_cfg, rank=0, world_size=workers, seed=seed)
    sampler.set_epoch(1)
    return sum(1 for _ in sampler)


def worker_duration(base: float, total: float, longest: float, workers: int, min_batches: int,
                    min_updates: int = 0, epochs: int = 1) -> float:
    """Per-worker ``max_duration`` in seconds: ``base`` capped at ``total / (workers * min_batches)`` and
    (``min_updates > 0``) at ``total * epochs / (workers * min_updates)``, at least ``longest``."""
    cap = total / (workers * min_batches)
    if min_updates:
        cap = min(cap, total * epochs / (workers * min_updates))
    return max(min(base, math.floor(10 * cap) / 10), math.ceil(10 * longest) / 10)


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


def plan(train_cfg, cuts, workers: list[int], cfg: PlanConfig, epochs: int = 0) -> list[Cell]:
    """One :class:`Cell` per worker count (``train_cfg``: the baseline's TrainConfig; ``epochs``: those of the
    study's runs, 0 for the baseline's)."""
    epochs = epochs or train_cfg.num_epochs
    check_workers(workers, cfg.group_size)
    if train_cfg.data.max_train_cuts:  # as the trainer does (asr_trainer.data.cuts.trainable_cuts)
        cuts = cuts.subset(first=min(train_cfg.data.max_train_cuts, len(cuts)))
    durations = [c.duration for c in cuts]
    if not durations:
        raise UserError("the training cuts are empty")
    total, longest = sum(durations), max(durations)
    base_steps = steps_per_epoch(cuts, train_cfg.data, 1, train_cfg.seed)
    cells = []
    for n in workers:
        data = dataclasses.replace(train_cfg.data, max_duration=worker_duration(
            train_cfg.data.max_duration, total, longest, n, cfg.min_batches, cfg.min_updates, epochs))
        steps = steps_per_epoch(cuts, data, n, train_cfg.seed)
        warmup = train_cfg.optim.warmup_steps
        if cfg.scale_warmup:
            warmup = max(1, round(warmup * steps / base_steps))
        block = cfg.bmuf_block or min(MAX_BLOCK, max(1, math.ceil(steps / cfg.bmuf_syncs)))
        cells.append(Cell(n, data.max_duration, steps, warmup, block))
    print(f"training audio {total:.0f} s in {len(durations)} cuts (longest {longest:.1f} s); baseline: "
          f"{train_cfg.data.max_duration:g} s per batch, {base_steps} steps per epoch, warm-up "
          f"{train_cfg.optim.warmup_steps} steps; {epochs} epochs", file=sys.stderr)
    print(f"{'workers':>8} {'s/batch/worker':>15} {'steps/epoch':>12} {'total steps':>12} {'warm-up':>8} "
          f"{'bmuf block':>11} {'hybrid groups':>14}", file=sys.stderr)
    for c in cells:
        print(f"{c.workers:>8} {c.max_duration:>15g} {c.steps:>12} {c.steps * epochs:>12} "
              f"{c.warmup:>8} {c.block:>11} {c.workers // cfg.group_size:>11} x {cfg.group_size}", file=sys.stderr)
    for c in cells:
        if c.steps * epochs < cfg.min_updates:
            print(f"WARNING: {c.workers} workers make {c.steps * epochs} updates < --min-updates {cfg.min_updates}: "
                  f"a batch per worker cannot be shorter than the longest cut ({longest:.1f} s); a larger corpus "
                  "(--profile study) gives more", file=sys.stderr)
    return cells


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cuts", type=Path, required=True, help="training cuts (jsonl.gz)")
    p.add_argument("--train-config", type=Path, required=True, help="the baseline's train.yaml")
    p.add_argument("--workers", required=True, help='worker counts, e.g. "32 64 128"')
    p.add_argument("--min-batches", type=int, default=PlanConfig.min_batches)
    p.add_argument("--min-updates", type=int, default=PlanConfig.min_updates, help="0: no cap")
    p.add_argument("--epochs", type=int, default=0, help="epochs of the study's runs (0: the baseline's)")
    p.add_argument("--bmuf-syncs", type=int, default=PlanConfig.bmuf_syncs)
    p.add_argument("--bmuf-block", type=int, default=PlanConfig.bmuf_block, help="0: automatic")
    p.add_argument("--group-size", type=int, default=PlanConfig.group_size)
    p.add_argument("--no-scale-warmup", action="store_true")
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
        cells = plan(load_config(TrainConfig, args.train_config, []), load_manifest_lazy(args.cuts), workers, cfg,
                     epochs=args.epochs)
    except (UserError, ValueError) as e:
        print(f"plan.py: {e}", file=sys.stderr)
        return 2
    for c in cells:
        print(f"{c.workers}\t{c.max_duration:g}\t{c.steps}\t{c.warmup}\t{c.block}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
