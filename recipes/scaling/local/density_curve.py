#!/usr/bin/env python3
"""How fast GTC's adaptive tau brings the sent density to its target, from a run's TensorBoard log.

GTC adapts each worker's tau after every step towards ``target_density`` (``conf/sync/gtc.yaml``). This
reads the per-step density of a run (``train/sync/step/gtc_density``: the mean over the workers of the
fraction of elements sent) and prints, per tenth of the run, its mean, and the first step from which the
density stays within a factor ``--within`` of the target:

    python recipes/scaling/local/density_curve.py --run exp/synth_study/scaling/gtc-w128 --target 0.01
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TAG = "train/sync/step/gtc_density"


def step_densities(run: Path) -> list[float]:
    """The per-step density of ``run``'s TensorBoard events, in step order (the last value of a repeated step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    if TAG not in acc.Tags()["scalars"]:
        raise SystemExit(f"density_curve: {run} has no {TAG} (not a GTC or hybrid run?)")
    by_step = {e.step: e.value for e in acc.Scalars(TAG)}
    return [by_step[s] for s in sorted(by_step)]


def settled_at(densities: list[float], target: float, within: float) -> int | None:
    """The first step (1-based) from which every density lies in ``[target / within, target * within]``."""
    inside = [target / within <= d <= target * within for d in densities]
    for i in range(len(inside)):
        if all(inside[i:]):
            return i + 1
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a GTC or hybrid run's exp dir")
    parser.add_argument("--target", type=float, default=0.01, help="the run's target density (default 0.01)")
    parser.add_argument("--within", type=float, default=1.5, help="settled: within this factor of the target")
    args = parser.parse_args(argv)
    densities = step_densities(args.run)
    n = len(densities)
    tenths = [densities[i * n // 10:(i + 1) * n // 10] for i in range(10)]
    print(f"{args.run.name}: {n} steps; mean density per tenth of the run (target {args.target:g}):")
    print("  " + " ".join(f"{sum(t) / len(t):.4f}" if t else "-" for t in tenths))
    step = settled_at(densities, args.target, args.within)
    where = f"step {step} ({100 * step / n:.0f}% of the updates)" if step else "never"
    print(f"within x{args.within:g} of the target from {where}; first step {densities[0]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
