"""BMUF by hand: 2 workers, one scalar parameter, plain SGD, two blocks."""

import json

import pytest
import torch
from torch import nn

from asr_trainer.sync import BmufConfig, Replica, SimCommunicator, build_strategy

LR = 0.5
SLOPES = {0: 1.0, 1: 3.0}  # loss_w = slope_w * x, so each local SGD step moves x by -LR * slope_w


class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.x = nn.Parameter(torch.zeros(1))


def _grad_fn(worker, model):
    (SLOPES[worker] * model.x).sum().backward()
    return worker


def _replica():
    m = Scalar()
    return Replica(m, torch.optim.SGD(m.parameters(), lr=LR))


def _run(nesterov: bool, blocks: int = 2):
    cfg = BmufConfig(block_size=2, nesterov=nesterov, block_momentum="linear")  # eta 1 - 1/2, as worked out below
    s = build_strategy(cfg, SimCommunicator(2), _replica)
    for _ in range(2 * blocks):
        s.step(_grad_fn)
    return s


def test_nesterov_two_blocks_by_hand():
    # eta = 1 - 1/2 = .5, zeta = 1. Block 1 from 0: x0 = 0 - 2*.5*1 = -1, x1 = 0 - 2*.5*3 = -3.
    # W_bar = -2, G = -2, Delta = -2, W_g = -2, restart = -2 + .5*-2 = -3.
    s = _run(nesterov=True, blocks=1)
    assert [m.model.x.item() for m in s.states] == [-3.0, -3.0]
    assert s.bmuf.w_g.item() == -2.0 and s.bmuf.delta.item() == -2.0
    # Block 2 from -3: x0 = -4, x1 = -6, W_bar = -5, G = -5 - -2 = -3, Delta = .5*-2 + -3 = -4,
    # W_g = -6 (the state; not the look-ahead point), restart = -6 + .5*-4 = -8.
    s = _run(nesterov=True)
    assert s.bmuf.w_g.item() == -6.0 and s.bmuf.delta.item() == -4.0
    assert [m.model.x.item() for m in s.states] == [-8.0, -8.0]


def test_classic_two_blocks_by_hand():
    # Block 1 as above but restart = W_g = -2. Block 2 from -2: x0 = -3, x1 = -5, W_bar = -4,
    # G = -2, Delta = .5*-2 + -2 = -3, W_g = -5, restart -5.
    s = _run(nesterov=False)
    assert s.bmuf.w_g.item() == -5.0
    assert [m.model.x.item() for m in s.states] == [-5.0, -5.0]


def test_block_sync_only_at_block_ends_and_close_block_closes_an_open_block_once():
    s = build_strategy(BmufConfig(block_size=2, nesterov=True), SimCommunicator(2), _replica)
    flags = [s.step(_grad_fn).block_sync for _ in range(3)]
    assert flags == [False, True, False]
    assert s.states[0].model.x.item() != s.states[1].model.x.item()  # mid-block: workers differ
    s.close_block()
    assert s.states[0].model.x.item() == s.states[1].model.x.item()
    w_g = s.global_model().x.item()
    assert w_g == s.bmuf.w_g.item() != s.states[0].model.x.item()  # the decoder gets W_g, not the look-ahead point
    s.close_block()  # idempotent: no second block update without steps in between
    assert s.global_model().x.item() == w_g


def test_warmup_is_dense_and_momentum_reset(tmp_path):
    def replica():
        m = Scalar()
        return Replica(m, torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9))

    s = build_strategy(BmufConfig(block_size=2, warmup_steps=2, optimizer_state="reset"), SimCommunicator(2), replica)
    s.step(_grad_fn)  # warm-up: mean slope 2 -> both at -1
    assert [m.model.x.item() for m in s.states] == [-1.0, -1.0]
    s.step(_grad_fn)
    assert s.bmuf.w_g.item() == s.states[0].model.x.item()  # W_g taken when warm-up ends
    for _ in range(2):
        s.step(_grad_fn)
    assert all(not m.replica.optimizer.state for m in s.states)  # reset at the sync
    s.summary.dump(tmp_path / "sync_stats.json")
    d = json.loads((tmp_path / "sync_stats.json").read_text())
    assert d["strategy"] == "bmuf" and d["workers"] == 2 and d["group_size"] == 1 and d["steps"] == 4
    assert d["bytes_sent_per_worker_per_step"] > 0 and d["gtc_density"] is None
    assert set(d["time_per_step_s"]) == {"compute", "encode_decode", "communicate"}
    assert s.summary.scalars()["sync/bytes_sent_per_worker_per_step"] == d["bytes_sent_per_worker_per_step"]


def test_buffers_are_averaged():
    def replica():
        m = nn.BatchNorm1d(1)
        return Replica(m, torch.optim.SGD(m.parameters(), lr=0.1))

    def grad_fn(worker, model):
        model(torch.tensor([[0.0], [2.0]]) + 10.0 * worker).sum().backward()

    s = build_strategy(BmufConfig(block_size=1), SimCommunicator(2), replica)
    s.step(grad_fn)
    # running_mean = 0.9 * 0 + 0.1 * batch mean: worker 0 -> 0.1, worker 1 -> 1.1; mean 0.6
    for m in s.states:
        assert m.model.running_mean.item() == pytest.approx(0.6)


def _momentum_run(optimizer_state: str):
    """2 workers, SGD lr .5 momentum .5, one block of 2 steps, classic restarts."""
    def replica():
        m = Scalar()
        return Replica(m, torch.optim.SGD(m.parameters(), lr=LR, momentum=0.5))

    cfg = BmufConfig(block_size=2, nesterov=False, optimizer_state=optimizer_state)
    s = build_strategy(cfg, SimCommunicator(2), replica)
    for _ in range(2):
        s.step(_grad_fn)
    return s


def test_optimizer_state_kept_reset_or_averaged_at_the_block_sync_by_hand():
    # worker 0 (slope 1): buffers 1 then .5 * 1 + 1 = 1.5; worker 1 (slope 3): 3 then 1.5 + 3 = 4.5
    buffers = lambda s: [gs.replica.optimizer.state[gs.model.x]["momentum_buffer"].item() for gs in s.states]  # noqa: E731
    assert buffers(_momentum_run("keep")) == [1.5, 4.5]
    averaged = _momentum_run("average")
    assert buffers(averaged) == [3.0, 3.0]  # (1.5 + 4.5) / 2 on both
    assert averaged.bmuf.w_g.item() == -2.5  # the model's block update is unchanged: x0 -1.25, x1 -3.75
    assert all(not gs.replica.optimizer.state for gs in _momentum_run("reset").states)


def test_averaged_adam_moments_are_the_mean_and_steps_are_kept():
    def replica():
        m = Scalar()
        return Replica(m, torch.optim.Adam(m.parameters(), lr=0.1))

    kept = build_strategy(BmufConfig(block_size=3, optimizer_state="keep"), SimCommunicator(2), replica)
    averaged = build_strategy(BmufConfig(block_size=3, optimizer_state="average"), SimCommunicator(2), replica)
    for _ in range(3):
        kept.step(_grad_fn)
        averaged.step(_grad_fn)
    for key in ("exp_avg", "exp_avg_sq"):
        want = sum(gs.replica.optimizer.state[gs.model.x][key] for gs in kept.states) / 2
        for gs in averaged.states:
            assert torch.allclose(gs.replica.optimizer.state[gs.model.x][key], want, rtol=1e-6), key
    assert all(float(gs.replica.optimizer.state[gs.model.x]["step"]) == 3 for gs in averaged.states)


def test_hybrid_with_update_thresholding_refuses_to_touch_the_group_optimizer_state():
    from asr_trainer.errors import UserError
    from asr_trainer.sync import GtcConfig, HybridConfig

    cfg = HybridConfig(group_size=2, gtc=GtcConfig(), bmuf=BmufConfig(optimizer_state="average"))
    with pytest.raises(UserError, match="threshold_on=gradient"):
        build_strategy(cfg, SimCommunicator(4), _replica)
