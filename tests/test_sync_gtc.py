"""GTC by hand: residual, thresholding, error feedback, and the strategy's update."""

import numpy as np
import pytest
import torch
from torch import nn

from asr_trainer.sync import GtcConfig, Replica, SimCommunicator, build_strategy
from asr_trainer.sync.codec import decode, encode
from asr_trainer.sync.gtc import adapt_tau, aggregate, threshold

GRADS = [[0.5, -1.25, 2.5], [0.75, 0.5, -0.25], [-0.5, -0.5, 0.25]]  # exact in binary


def test_residual_by_hand_and_nothing_lost():
    r = torch.zeros(3)
    sent_total = torch.zeros(3)
    expected_sent = [  # tau = 1: one tau per element and step at most
        [0.0, -1.0, 1.0],  # r = [.5, -1.25, 2.5]  -> r = [.5, -.25, 1.5]
        [1.0, 0.0, 1.0],   # r = [1.25, .25, 1.25] -> r = [.25, .25, .25]
        [0.0, 0.0, 0.0],   # r = [-.25, -.25, .5]
    ]
    for g, want in zip(GRADS, expected_sent):
        r += torch.tensor(g)
        msg = threshold(r, 1.0)
        for encoding in ("strom", "compact"):
            back = decode(encode(msg, encoding), 3)
            np.testing.assert_array_equal(back.indices, msg.indices)
        sent = aggregate([msg], torch.zeros(3))
        assert sent.tolist() == want
        sent_total += sent
    assert r.tolist() == [-0.25, -0.25, 0.5]
    assert (sent_total + r).tolist() == torch.tensor(GRADS).sum(0).tolist()  # error feedback: nothing lost


def test_adaptive_tau_moves_towards_target_density():
    cfg = GtcConfig(tau=1.0, target_density=0.01)
    assert adapt_tau(1.0, 0.04, cfg) == pytest.approx(2.0)  # (0.04/0.01)**0.5 = 2
    assert adapt_tau(1.0, 0.0025, cfg) == pytest.approx(0.5)
    assert adapt_tau(1.0, 0.0, cfg) == 0.5
    assert adapt_tau(1.0, 0.5, GtcConfig(tau=1.0)) == 1.0  # fixed tau


class Linear3(nn.Module):
    """loss = c_w . w, so worker w's gradient is its constant c_w."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))


def test_gtc_strategy_two_workers_by_hand():
    consts = {0: torch.tensor(GRADS[0]), 1: torch.tensor(GRADS[1])}

    def grad_fn(worker, model):
        (consts[worker] * model.w).sum().backward()

    def replica():
        m = Linear3()
        return Replica(m, torch.optim.SGD(m.parameters(), lr=1.0))

    for encoding in ("strom", "compact"):
        s = build_strategy(GtcConfig(tau=1.0, encoding=encoding), SimCommunicator(2), replica)
        # step 1: r0 = c0 sends [0,-1,1]; r1 = c1 sends nothing; mean [0,-.5,.5]; w = -mean
        s.step(grad_fn)
        assert s.model.w.tolist() == [0.0, 0.5, -0.5]
        # step 2: r0 = [1,-1.5,4] sends [1,-1,1]; r1 = [1.5,1,-.5] sends [1,1,0]; mean [1,0,.5]
        stats = s.step(grad_fn)
        assert s.model.w.tolist() == [-1.0, 0.5, -1.0]
        assert stats.density == pytest.approx((3 / 3 + 2 / 3) / 2)
        assert stats.payload_bytes > 0 and stats.bytes_received >= stats.payload_bytes
