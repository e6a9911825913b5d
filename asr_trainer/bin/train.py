"""``asr-trainer train``: the single-worker baseline, or N workers under a sync strategy (one trainer).

    asr-trainer train --exp-dir exp/b ...                                      # baseline (1 worker)
    asr-trainer train --exp-dir exp/g ... --sync gtc --simulate-workers 16 sync.tau=0.002
    torchrun --nproc-per-node 4 -m asr_trainer.bin.main train ... --sync hybrid sync.group_size=2
    asr-trainer train --exp-dir exp/g ... --sync gtc --simulate-workers 16 --resume   # after a crash

The baseline is the same trainer with one worker and ``sync none``. A synchronised run
continues an existing exp dir only with ``--resume``, or when torchrun restarted the
workers after a failure (``--max-restarts``); the baseline always continues from its
latest checkpoint. Ctrl-C or SIGTERM (a scheduler preempting the job) stops after the current
step with a checkpoint (exit 130).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_trainer.config import load_config
from asr_trainer.default_conf import find_config
from asr_trainer.log import setup_logging

HELP = ("train a CTC acoustic model: one worker, or N workers under a sync strategy "
        "(--simulate-workers N in one process, or under torchrun); the baseline resumes from its latest checkpoint")
MODEL_PREFIX = "model."
SYNC_PREFIX = "sync."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("conf/train.yaml"), help="training settings (YAML)")
    parser.add_argument("--exp-dir", type=Path, required=True, help="where checkpoints, logs, tensorboard go")
    parser.add_argument("--lang-dir", type=Path, required=True, help="lang dir with tokens.txt")
    parser.add_argument("--cuts-dir", type=Path, required=True, help="dir with <corpus>_cuts_<split>.jsonl.gz")
    parser.add_argument("--sync", default=None, metavar="NAME",
                        help="none|allreduce|gtc|bmuf|hybrid (default: the 1-worker baseline; allreduce "
                             "under torchrun or with --simulate-workers)")
    parser.add_argument("--sync-config", type=Path, default=None,
                        help="strategy settings (default conf/sync/NAME.yaml: the working directory's, else "
                             "the package's)")
    parser.add_argument("--simulate-workers", type=int, default=None, metavar="N",
                        help="run N logical workers in this process (not under torchrun)")
    parser.add_argument("--exact-reduction", action="store_true",
                        help="under torchrun: all-reduce by gathering and summing in rank order, bit-identical "
                             "to --simulate-workers (costs (N-1)x the tensor on the wire)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest complete checkpoint in --exp-dir, exactly where it stopped "
                             "(implied under a torchrun restart; the baseline always resumes)")
    parser.add_argument("--probe-steps", type=int, default=0, metavar="K",
                        help="time K steps of this run (after one untimed step) in memory, print its speed in x real "
                             "time and exit: nothing is written to --exp-dir (one process, not under torchrun)")
    parser.add_argument("overrides", nargs="*",
                        help="key=value settings; model.<key>=value for the model, sync.<key>=value for the strategy")


def run(args: argparse.Namespace) -> None:
    from asr_trainer.data.cuts import load_cuts
    from asr_trainer.lang.tokenizer import Tokenizer
    from asr_trainer.models import ModelConfig
    from asr_trainer.train.config import TrainConfig
    from asr_trainer.train.distributed import communicator
    from asr_trainer.train.fault import is_restart
    from asr_trainer.train.trainer import fit

    plain, model_overrides, sync_overrides = split_overrides(args.overrides)
    cfg = load_config(TrainConfig, args.config, plain)
    model_cfg = load_config(ModelConfig, cfg.model_config, model_overrides)
    sync_cfg, baseline = sync_setup(args, sync_overrides)
    setup_logging()
    tokenizer = Tokenizer.from_lang_dir(args.lang_dir)
    train_cuts = load_cuts(args.cuts_dir, cfg.data.corpus, cfg.data.train_split, lazy=True)
    valid_cuts = load_cuts(args.cuts_dir, cfg.data.corpus, cfg.data.valid_split)
    if args.probe_steps:
        probe(args, cfg, model_cfg, sync_cfg, tokenizer, train_cuts, valid_cuts)
        return
    with communicator(cfg.device, args.simulate_workers, exact_order=args.exact_reduction) as comm:
        rank = comm.hosted[0]
        log_file = args.exp_dir / "log" / ("log-train.txt" if rank == 0 else f"log-train-rank{rank}.txt")
        fit(cfg, model_cfg, sync_cfg, comm, args.exp_dir, tokenizer.encode, tokenizer.num_outputs, train_cuts,
            valid_cuts, resume=baseline or args.resume or is_restart(), on_start=lambda: setup_logging(log_file))


def probe(args: argparse.Namespace, cfg, model_cfg, sync_cfg, tokenizer, train_cuts, valid_cuts) -> None:
    """``--probe-steps``: the run's speed, one line on stdout (``... = <R>x real time``); nothing written."""
    from asr_trainer.errors import UserError
    from asr_trainer.sync import SimCommunicator
    from asr_trainer.train.distributed import torchrun_launch
    from asr_trainer.train.probe import probe_run

    if torchrun_launch() is not None:
        raise UserError("--probe-steps runs in one process: use --simulate-workers N instead of torchrun")
    workers = args.simulate_workers or 1
    result = probe_run(cfg, model_cfg, sync_cfg, SimCommunicator(workers), tokenizer.encode, tokenizer.num_outputs,
                       train_cuts, valid_cuts, args.probe_steps)
    print(f"probe: {result.steps} steps of {workers} worker(s), sync {sync_cfg.name}: {result.audio_s:.0f} s of "
          f"audio in {result.seconds:.1f} s = {result.real_time_factor:.1f}x real time; an epoch of "
          f"{result.epoch_audio_s:.0f} s of audio: {result.epoch_seconds:.0f} s", flush=True)


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``key=value`` overrides as (train settings, ``model.`` ones, ``sync.`` ones), the prefixes removed."""
    model = [o[len(MODEL_PREFIX):] for o in overrides if o.startswith(MODEL_PREFIX)]
    sync = [o[len(SYNC_PREFIX):] for o in overrides if o.startswith(SYNC_PREFIX)]
    plain = [o for o in overrides if not o.startswith((MODEL_PREFIX, SYNC_PREFIX))]
    return plain, model, sync


def sync_setup(args: argparse.Namespace, sync_overrides: list[str]):
    """The strategy settings, checked against the number of workers before anything starts, and whether
    this is the 1-worker baseline (``sync none``; it always resumes)."""
    from asr_trainer.sync import NoSyncConfig, load_sync_config
    from asr_trainer.train.distributed import check_sync_config, torchrun_launch, world_size_of

    synced = (args.sync or args.sync_config or args.simulate_workers is not None or sync_overrides
              or torchrun_launch() is not None)
    if not synced:
        return NoSyncConfig(), True
    world_size = world_size_of(args.simulate_workers)
    name = args.sync or (None if args.sync_config else "allreduce")
    path = args.sync_config
    if path is None and name is not None:  # an unknown name has no file: load_sync_config names the choices
        default = find_config(f"conf/sync/{name}.yaml")
        path = default if default.is_file() else None
    sync_cfg = load_sync_config(path, sync_overrides, name=name)
    check_sync_config(sync_cfg, world_size)
    return sync_cfg, False
