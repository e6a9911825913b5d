"""Compute time of one training step of the default model against the per-worker batch, on any device.

One step is forward + CTC loss + backward + clipped Adam step on a batch of random 80-dim features
holding ``--batch-seconds`` of audio in utterances of ``--utt-seconds`` (padded to equal length),
the model of ``conf/model/tdnn_lstm.yaml``. Each figure is the median of ``--repeats`` steps after
warm-up, synchronised on a GPU. This is the per-worker compute a cost model of a GPU cluster needs
(``report/cost_model.py``): it depends on the model and the per-worker batch, not on the strategy.

    python benchmarks/step_time.py --device cuda --batch-seconds 2 5 10 30 60 [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from asr_trainer.config import load_config
from asr_trainer.models import ModelConfig, num_parameters
from asr_trainer.sync.replica import clipped_step
from asr_trainer.train.build import build_replica
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.step import forward_backward

FRAMES_PER_SECOND = 100
NUM_OUTPUTS = 41


def batch(seconds: float, utt_seconds: float) -> dict:
    """Random features for ``seconds`` of audio in utterances of ``utt_seconds`` (at least one)."""
    utts = max(1, round(seconds / utt_seconds))
    frames = int(utt_seconds * FRAMES_PER_SECOND)
    tokens = [[1 + (i + j) % (NUM_OUTPUTS - 1) for j in range(int(utt_seconds * 4))] for i in range(utts)]
    return {"features": torch.randn(utts, frames, 80), "feature_lens": torch.full((utts,), frames),
            "tokens": tokens}


def step_ms(replica, b: dict, device: str, bf16: bool, repeats: int) -> float:
    """Median milliseconds of a training step on ``b``."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for i in range(repeats + 2):
        sync()
        start = time.perf_counter()
        forward_backward(replica.model, b, device, bf16)
        clipped_step(replica, 5.0)
        sync()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--batch-seconds", type=float, nargs="+", default=[2, 5, 10, 30, 60])
    p.add_argument("--utt-seconds", type=float, default=2.3, help="utterance length (the study corpus: ~2.3 s)")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    torch.manual_seed(0)
    cfg = load_config(TrainConfig, "conf/train.yaml", [])
    model_cfg = load_config(ModelConfig, cfg.model_config)
    replica = build_replica(model_cfg, cfg, NUM_OUTPUTS, args.device)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(f"model {model_cfg.kind}, {num_parameters(replica.model):,} parameters; device {args.device} ({name})"
          f"{', bf16 autocast' if args.bf16 else ''}; utterances of {args.utt_seconds:g} s")
    print(f"{'batch s':>8} {'utts':>5} {'ms/step':>9} {'x real time':>12}")
    for seconds in args.batch_seconds:
        b = batch(seconds, args.utt_seconds)
        ms = step_ms(replica, b, args.device, args.bf16, args.repeats)
        audio = len(b["tokens"]) * args.utt_seconds
        print(f"{audio:8.1f} {len(b['tokens']):5d} {ms:9.2f} {1e3 * audio / ms:12.0f}")


if __name__ == "__main__":
    main()
