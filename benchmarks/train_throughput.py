"""Training throughput of the default model (conf/model/tdnn_lstm.yaml), in x real time.

Builds a tone corpus with lilcom fbank features (asr_trainer.train.synthetic),
then times (a) the full pipeline: lhotse sampler + our dataset (lilcom
decoding, padding, SpecAugment) + forward_backward + apply_update, and (b) the
bare model step on pre-built tensors, on ``--threads`` CPU threads.
Target: (a) >= 150x real time on 2 cores.

    python benchmarks/train_throughput.py [--cuts 80] [--threads 2] [--max-duration 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from asr_trainer.config import load_config
from asr_trainer.models import ModelConfig, num_parameters
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.loop import default_step, train_epoch
from asr_trainer.train.replica import build_replica
from asr_trainer.train.sampler import make_loader, make_train_sampler
from asr_trainer.train.synthetic import ALPHABET, char_encode, make_tone_cuts

TARGET_RTF = 150.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cuts", type=int, default=80)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-duration", type=float, default=60.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    cfg = load_config(TrainConfig, "conf/train.yaml", [f"data.max_duration={args.max_duration}", "progress_bar=false"])
    model_cfg = load_config(ModelConfig, cfg.model_config)
    replica = build_replica(model_cfg, cfg, len(ALPHABET) + 2)
    with tempfile.TemporaryDirectory() as tmp:
        cuts = make_tone_cuts(Path(tmp), args.cuts, seed=0, max_words=8)
        audio_s = sum(c.duration for c in cuts)
        loader = make_loader(make_train_sampler(cuts, cfg.data), char_encode, cfg.data, train=True)
        step = default_step(clip_norm=cfg.clip_norm)
        train_epoch(replica, [next(iter(loader))], step)  # warm-up
        result = train_epoch(replica, loader, step)
        batches = list(loader)
    start = time.perf_counter()
    for batch in batches:
        step(replica, batch)
    bare = sum(int(b["feature_lens"].sum()) for b in batches) * 0.01 / (time.perf_counter() - start)
    print(f"model: {model_cfg.kind}, {num_parameters(replica.model):,} parameters; threads: {args.threads}")
    print(f"corpus: {len(cuts)} cuts, {audio_s:.1f} s of audio; {result.steps} batches of <= {args.max_duration:g} s")
    print(f"full pipeline (sampler + lilcom + SpecAugment + step): {result.real_time_factor:.0f}x real time "
          f"(target >= {TARGET_RTF:.0f}x)")
    print(f"model step only (features in memory):                  {bare:.0f}x real time")


if __name__ == "__main__":
    main()
