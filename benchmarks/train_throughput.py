"""Training throughput of the default model (conf/model/tdnn_lstm.yaml), in x real time, on any device.

Builds a tone corpus with lilcom fbank features (asr_trainer.testing.tones),
then times (a) the full pipeline: lhotse sampler + our dataset (lilcom
decoding, padding, SpecAugment) + forward_backward + the optimizer step, and (b) the
bare model step on pre-built batches, on ``--threads`` CPU threads or on ``--device cuda``
(synchronised before each clock read). Target on 2 CPU cores: (a) >= 150x real time.

    python benchmarks/train_throughput.py [--cuts 80] [--threads 2] [--max-duration 60] [--device cuda] [--bf16]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from asr_trainer.config import load_config
from asr_trainer.data.sampler import make_loader, make_train_sampler
from asr_trainer.models import ModelConfig, num_parameters
from asr_trainer.testing.tones import ALPHABET, char_encode, make_tone_cuts
from asr_trainer.train.build import build_replica
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.throughput import timed_steps

TARGET_RTF = 150.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cuts", type=int, default=80)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-duration", type=float, default=60.0)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    cfg = load_config(TrainConfig, "conf/train.yaml", [f"data.max_duration={args.max_duration}", "progress_bar=false"])
    model_cfg = load_config(ModelConfig, cfg.model_config)
    replica = build_replica(model_cfg, cfg, len(ALPHABET) + 2, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        cuts = make_tone_cuts(Path(tmp), args.cuts, seed=0, max_words=8)
        loader = make_loader(make_train_sampler(cuts, cfg.data), char_encode, cfg.data, train=True)
        timed_steps(replica, [next(iter(loader))], args.device, args.bf16, cfg.clip_norm)  # warm-up
        seconds, audio = timed_steps(replica, loader, args.device, args.bf16, cfg.clip_norm)
        batches = list(loader)
    bare_seconds, bare_audio = timed_steps(replica, batches, args.device, args.bf16, cfg.clip_norm)
    where = f"{args.device}{' bf16' if args.bf16 else ''}"
    if args.device.startswith("cuda"):
        where += f" ({torch.cuda.get_device_name(args.device)})"
    print(f"model: {model_cfg.kind}, {num_parameters(replica.model):,} parameters; threads: {args.threads}; "
          f"device: {where}")
    print(f"corpus: {len(cuts)} cuts, {audio:.1f} s of audio; {len(batches)} batches of <= {args.max_duration:g} s")
    print(f"full pipeline (sampler + lilcom + SpecAugment + step): {audio / seconds:.0f}x real time "
          f"(target >= {TARGET_RTF:.0f}x on 2 CPU cores)")
    print(f"model step only (features in memory):                  {bare_audio / bare_seconds:.0f}x real time")


if __name__ == "__main__":
    main()
