"""A simulated cluster and a real 4-process gloo run reach the same parameters."""

import pytest
import torch

from asr_trainer.sync import DistCommunicator, SimCommunicator, load_sync_config, run_processes
from asr_trainer.testing.toy import run_toy

STEPS = 20
WORLD = 4
CASES = {
    "none": ("none", []),
    "allreduce": ("allreduce", []),
    "gtc": ("gtc", ["tau=0.01"]),
    "gtc-strom-update": ("gtc", ["tau=0.002", "encoding=strom", "threshold_on=update"]),
    "gtc-adaptive": ("gtc", ["tau=0.01", "target_density=0.2"]),
    "bmuf": ("bmuf", ["block_size=5", "warmup_steps=3"]),
    "bmuf-classic-reset": ("bmuf", ["block_size=4", "nesterov=false", "optimizer_state=reset"]),
    "bmuf-average-state": ("bmuf", ["block_size=4", "optimizer_state=average"]),
    "hybrid": ("hybrid", ["group_size=2", "bmuf.block_size=5", "gtc.tau=0.01", "bmuf.warmup_steps=2"]),
    "hybrid-gradient-average": ("hybrid", ["group_size=2", "bmuf.block_size=5", "gtc.tau=0.01",
                                           "gtc.threshold_on=gradient", "bmuf.optimizer_state=average"]),
}
# Averaging the optimizer state adds an all-reduce per block; gloo's ring sums in another order than the
# simulation and the momentum amplifies the ~1e-8 rounding to 2.6e-6 over 20 steps (measured), so these run
# with rank-order sums (bit-identical to the simulation, measured 0.0), whose bytes are counted as (N-1)x.
EXACT = {"bmuf-average-state", "hybrid-gradient-average"}


def _configs():
    return {case: load_sync_config(f"conf/sync/{name}.yaml", ov) for case, (name, ov) in CASES.items()}


def _real_worker(rank: int, world_size: int, configs: dict) -> dict:
    return {case: run_toy(cfg, DistCommunicator(exact_order=case in EXACT), STEPS)[rank]
            for case, cfg in configs.items()}


@pytest.mark.slow
def test_simulated_equals_real_gloo():
    configs = _configs()
    real = run_processes(_real_worker, WORLD, configs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sim = {case: run_toy(cfg, SimCommunicator(WORLD), STEPS) for case, cfg in configs.items()}
    finally:
        torch.set_num_threads(threads)
    for case in configs:
        for rank in range(WORLD):
            r, s = real[rank][case], sim[case][rank]
            assert torch.allclose(r["params"], s["params"], rtol=1e-5, atol=1e-7), (case, rank)
            assert torch.allclose(r["buffers"], s["buffers"], rtol=1e-5, atol=1e-7), (case, rank)
        # traffic is counted from the same message sizes in both (sim: mean over its hosted workers)
        key = "bytes_sent_per_worker_per_step"
        real_mean = sum(real[rank][case]["summary"][key] for rank in range(WORLD)) / WORLD
        if case not in EXACT:
            assert real_mean == pytest.approx(sim[case][0]["summary"][key], rel=1e-9), case
        if case != "none":  # workers must actually have been kept in sync / differ where expected
            assert sim[case][0]["summary"]["bytes_sent_per_worker_per_step"] > 0
