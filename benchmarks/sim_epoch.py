#!/usr/bin/env python
"""Wall time of one simulated epoch at 1, 16 and 64 logical workers, per strategy (MEASURED).

The same tone corpus and per-worker ``max_duration`` at every N: lhotse shards the data, so
N workers take ~1/N of the steps with N minibatches each -- an epoch is the same compute.
The time is the training loop of the trainer (steps, syncs, epoch-end block close; not
validation or checkpoint writing). Each figure is the fastest of ``--repeats`` epochs (as timeit
does: other work on the machine only adds time; one epoch here is about a second). Target: within
1.5x of the 1-worker epoch.

Usage: python benchmarks/sim_epoch.py [--cuts 384] [--repeats 3] [--workers 1 16 64] [--strategies none gtc ...]
       python benchmarks/sim_epoch.py --device cuda --workers 1 128     # the simulated cluster on one GPU
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from asr_trainer.config import load_config
from asr_trainer.models import ModelConfig
from asr_trainer.sync import SimCommunicator, load_sync_config
from asr_trainer.train.config import TrainConfig
from asr_trainer.testing.tones import ALPHABET, char_encode, make_tone_cuts
from asr_trainer.train.trainer import fit

MODEL = ["tdnn_lstm.conv_dim=64", "tdnn_lstm.lstm_dim=64", "tdnn_lstm.num_lstm_layers=1"]
TRAIN = ["data.max_duration=2", "progress_bar=false", "num_epochs=1", "log_every=1000", "num_threads=1",
         "optim.warmup_steps=5"]
SYNC = {
    "none": [], "allreduce": [], "gtc": ["tau=0.01"], "bmuf": ["block_size=4"],
    "hybrid": ["gtc.tau=0.01", "bmuf.block_size=4"],
}


def fastest_epoch(strategy: str, workers: int, train, dev, root: Path, repeats: int,
                  device: str = "cpu") -> tuple[float, int]:
    """The fastest of ``repeats`` epochs (training-loop seconds) and its steps."""
    return min(epoch_seconds(strategy, workers, train, dev, root / f"r{r}", device) for r in range(repeats))


def epoch_seconds(strategy: str, workers: int, train, dev, root: Path, device: str = "cpu") -> tuple[float, int]:
    """Training-loop seconds of one epoch and its steps."""
    overrides = list(SYNC[strategy]) + ([f"group_size={min(4, workers)}"] if strategy == "hybrid" else [])
    sync_cfg = load_sync_config(f"conf/sync/{strategy}.yaml", overrides)
    cfg = load_config(TrainConfig, None, TRAIN + [f"device={device}"])
    model_cfg = load_config(ModelConfig, None, MODEL)
    summary = fit(cfg, model_cfg, sync_cfg, SimCommunicator(workers), root / f"{strategy}-{workers}",
                       char_encode, len(ALPHABET) + 2, train, dev)
    row = summary["epochs"][0]
    return row["seconds"], row["steps"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuts", type=int, default=384, help="tone utterances in the training set")
    ap.add_argument("--repeats", type=int, default=3, help="epochs per figure; the fastest is kept")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--strategies", nargs="+", default=list(SYNC), choices=list(SYNC))
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]: the simulated cluster on one device")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        train = make_tone_cuts(root / "train", args.cuts, seed=1)
        dev = make_tone_cuts(root / "dev", 8, seed=2)
        audio = sum(c.duration for c in train)
        print(f"corpus: {len(train)} cuts, {audio:.0f} s of audio ({time.perf_counter() - start:.1f} s to build); "
              f"model {' '.join(MODEL)}; max_duration 2 s per worker; device {args.device}")
        base, _ = fastest_epoch("none", 1, train, dev, root / "base", args.repeats, args.device)
        print(f"1-worker epoch (none): {base:.2f} s (measured)")
        print(f"{'strategy':<10}" + "".join(f"{f'N={n} s (steps) x1w':>24}" for n in args.workers))
        for strategy in args.strategies:
            cells = []
            for n in args.workers:
                seconds, steps = fastest_epoch(strategy, n, train, dev, root / f"{strategy}-{n}", args.repeats,
                                               args.device)
                cells.append(f"{seconds:8.2f} ({steps:3d}) {seconds / base:5.2f}x")
            print(f"{strategy:<10}" + "".join(f"{c:>24}" for c in cells), flush=True)
    print("x1w: epoch time / the 1-worker epoch (target <= 1.5x); all figures measured on this machine")


if __name__ == "__main__":
    main()
