#!/usr/bin/env python
"""Measure gloo collectives on this machine and compare them with the loopback model;
then print the modelled speed-up table of the paper's setting beside the paper's.

Usage: python benchmarks/collectives.py [--quick] [--config conf/cost_model.yaml]
Measured figures are marked "measured", model outputs "model".
"""

from __future__ import annotations

import argparse

from asr_trainer.config import load_config
from asr_trainer.report.collectives import fit_loopback_model, measure_collectives, usable_cores
from asr_trainer.report.cost_model import Scenario, speedup, step_time
from asr_trainer.report.tables import PAPER_RESULTS

MB = 1 << 20  # paper speed-ups: asr_trainer.report.tables.PAPER_RESULTS (DESIGN.md section 1)


def gloo_table(quick: bool) -> None:
    cores = usable_cores()
    fit = measure_collectives([4], [4096, 16 * MB], ops=["all_reduce"])
    model = fit_loopback_model(fit[0], fit[1], cores)
    print(f"loopback fit on {cores} cores (all_reduce p=4): alpha={model.alpha_s * 1e6:.0f} us/hop,"
          f" w={model.w_s_per_byte * 1e9:.3f} ns/byte")
    worlds = [2, 3, 8] if quick else [2, 3, 4, 6, 8]
    sizes = [4096, 4 * MB] if quick else [4096, MB, 4 * MB, 16 * MB]
    print(f"{'op':<11}{'p':>3}{'bytes':>10}{'measured ms':>13}{'model ms':>10}{'err %':>8}")
    for t in measure_collectives(worlds, sizes):
        pred = model.predict(t.op, t.world, t.size_bytes)
        err = (pred - t.seconds) / t.seconds * 100
        print(f"{t.op:<11}{t.world:>3}{t.size_bytes:>10}{t.seconds * 1e3:>13.2f}"
              f"{pred * 1e3:>10.2f}{err:>8.0f}")


def paper_table(config: str | None) -> None:
    sc = load_config(Scenario, config)
    topo, w = sc.topology(), sc.workload
    print(f"\nmodel: {w.params / 1e6:.0f}M params, compute {w.compute_s * 1e3:.0f} ms/step, "
          f"{sc.workers_per_node}/node {sc.intra_link}, {sc.inter_link} between nodes, "
          f"density {w.gtc_density:g}, block {w.bmuf_block}, group {w.hybrid_group}")
    print(f"{'N':>4} " + "".join(f"{s:>22}" for s in ("gtc", "bmuf", "hybrid", "allreduce")))
    for n in sc.workers:
        cells = []
        for s in ("gtc", "bmuf", "hybrid", "allreduce"):
            cell = PAPER_RESULTS.get(s, {}).get(n)
            paper = cell.speedup if cell else None
            ms = step_time(s, n, w, topo).total * 1e3
            cells.append(f"{speedup(s, n, w, topo):6.1f}x ({paper or '-':>4}x) {ms:5.0f}ms")
        print(f"{n:>4} " + "".join(f"{c:>22}" for c in cells))
    print("cells: model speed-up (paper speed-up) model step time; speed-ups are throughput only")
    n = max(sc.workers)
    ratio = speedup("bmuf", n, w, topo) / speedup("hybrid", n, w, topo)
    print(f"at N={n} BMUF would need {100 * (ratio - 1):.1f}% more epochs than the hybrid for "
          "the hybrid to be faster to convergence (the per-step model has no convergence term)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer process counts and sizes")
    ap.add_argument("--config", default="conf/cost_model.yaml")
    ap.add_argument("--skip-gloo", action="store_true", help="print only the modelled table")
    args = ap.parse_args()
    if not args.skip_gloo:
        gloo_table(args.quick)
    paper_table(args.config)


if __name__ == "__main__":
    main()
