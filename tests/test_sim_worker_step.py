"""The simulated step's per-worker shortcuts give the same bits as the long way.

``WorkerRng.swapping`` (the process's RNG states kept aside once for a loop over workers)
against ``WorkerRng.active`` per worker; GTC's flat finiteness check against a check per
parameter. End to end, tests/test_distributed_train.py (simulated == gloo) and
tests/test_resume_exact.py cover the same paths.
"""

import random

import numpy as np
import pytest
import torch

from asr_trainer.data.workers import WorkerRng
from asr_trainer.rng import rng_state, seed_all
from asr_trainer.sync.gtc_sync import _grads_finite


def _draw() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_swapping_gives_every_worker_the_draws_active_gives():
    workers = [0, 3, 7]
    one_by_one, looped = WorkerRng(5, workers), WorkerRng(5, workers)
    seed_all(1)
    want = []
    for _ in range(2):
        for w in workers:
            with one_by_one.active(w):
                want.append(_draw())
    process_after_active = _draw()
    seed_all(1)
    got = []
    for _ in range(2):
        with looped.swapping() as swap:
            for w in workers:
                with swap(w):
                    got.append(_draw())
    assert got == want
    assert _draw() == process_after_active  # the process's own streams are untouched
    for w in workers:
        a, b = one_by_one.states[w], looped.states[w]
        assert a["python"] == b["python"] and torch.equal(a["torch"], b["torch"])


def test_swapping_restores_the_process_states_when_a_worker_fails():
    rng = WorkerRng(5, [0, 1])
    before = rng_state()
    with pytest.raises(RuntimeError):
        with rng.swapping() as swap:
            with swap(0):
                random.random()
            with swap(1):
                random.random()
                raise RuntimeError("loading failed")
    assert rng_state()["python"] == before["python"]
    reference = WorkerRng(5, [1])
    with reference.active(1):
        random.random()
    assert rng.states[1]["python"] == reference.states[1]["python"]  # saved on the way out, as active does


def _per_parameter(model: torch.nn.Module) -> bool:
    """The check GTC made before (one reduction per parameter)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return not grads or bool(torch.stack([g.isfinite().all() for g in grads]).all())


@pytest.mark.parametrize("case", ["finite", "nan", "inf", "-inf", "some_missing", "none"])
def test_flat_finiteness_check_equals_the_per_parameter_check(case):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    params = list(model.parameters())
    if case != "none":
        for p in params:
            p.grad = torch.randn_like(p)
    if case in ("nan", "inf", "-inf"):
        params[2].grad[1, 0] = float(case)
    if case == "some_missing":
        params[1].grad = None
    assert _grads_finite(model) == _per_parameter(model) == (case in ("finite", "some_missing", "none"))
