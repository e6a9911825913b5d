"""GTC by hand: residual, thresholding, error feedback, and the strategy's update."""

import numpy as np
import pytest
import torch
from torch import nn

from asr_trainer.sync import GtcConfig, Replica, SimCommunicator, build_strategy, codec, gtc
from asr_trainer.sync.codec import SparseMessage, decode, encode
from asr_trainer.sync.gtc import (accumulate_and_threshold, adapt_tau, aggregate, aggregate_payloads, as_float32,
                                  smooth_density, threshold)

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
    cfg = GtcConfig(tau=1.0, target_density=0.01, tau_adapt_rate=0.5)
    assert adapt_tau(1.0, 0.04, cfg) == pytest.approx(2.0)  # (0.04/0.01)**0.5 = 2
    assert adapt_tau(1.0, 0.0025, cfg) == pytest.approx(0.5)
    assert adapt_tau(1.0, 0.0, cfg) == 0.5
    assert adapt_tau(1.0, 0.5, GtcConfig(tau=1.0, target_density=None)) == 1.0  # fixed tau


def test_running_density_by_hand():
    cfg = GtcConfig(target_density=0.04, tau_adapt_smoothing=0.25)
    assert smooth_density(None, 0.16, cfg) == pytest.approx(0.07)  # from the target: 0.75 * 0.04 + 0.25 * 0.16
    assert smooth_density(0.08, 0.0, cfg) == pytest.approx(0.06)  # 0.75 * 0.08 + 0.25 * 0
    assert smooth_density(0.06, 0.5, cfg) == pytest.approx(0.17)  # 0.75 * 0.06 + 0.25 * 0.5
    assert smooth_density(0.06, 0.5, GtcConfig(tau_adapt_smoothing=1.0)) == 0.5  # the last message alone
    with pytest.raises(ValueError, match="tau_adapt_smoothing"):
        GtcConfig(tau_adapt_smoothing=0.0)


def _adam_like_densities(cfg: GtcConfig, steps: int, numel: int = 100_000) -> list[float]:
    """Densities of one worker whose updates move every element by about the learning rate a step (as Adam's
    do: a consistent sign per element plus noise, times an LR warmed up over 19 steps), tau adapting."""
    gen = torch.Generator().manual_seed(0)
    drift, residual, tau, mean, out = torch.randn(numel, generator=gen), torch.zeros(numel), cfg.tau, None, []
    for t in range(1, steps + 1):
        update = 0.0044 * min(1.0, t / 19) * (0.5 * drift + torch.randn(numel, generator=gen)).clamp(-2, 2)
        density = accumulate_and_threshold(residual, update, tau).count / numel
        mean = smooth_density(mean, density, cfg)
        tau = adapt_tau(tau, mean, cfg)
        out.append(density)
    return out


def test_a_running_density_holds_the_target_where_single_messages_swing():
    """With Adam-like updates, tau set from each message's density alone cycles (every element crosses it
    in the same step, then none does) at many times the target; set from the running density it settles."""
    last = slice(60, 120)
    swinging = _adam_like_densities(GtcConfig(tau=0.003, target_density=0.01, tau_adapt_smoothing=1.0,
                                              tau_adapt_rate=0.5), 120)
    assert np.mean(swinging[last]) > 0.05 and min(swinging[last]) < 0.005 and max(swinging[last]) > 0.05
    settled = _adam_like_densities(GtcConfig(tau=0.003, target_density=0.01), 120)  # the defaults
    assert 0.008 < np.mean(settled[last]) < 0.0125


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
        s = build_strategy(GtcConfig(tau=1.0, target_density=None, encoding=encoding), SimCommunicator(2), replica)
        # step 1: r0 = c0 sends [0,-1,1]; r1 = c1 sends nothing; mean [0,-.5,.5]; w = -mean
        s.step(grad_fn)
        assert s.model.w.tolist() == [0.0, 0.5, -0.5]
        # step 2: r0 = [1,-1.5,4] sends [1,-1,1]; r1 = [1.5,1,-.5] sends [1,1,0]; mean [1,0,.5]
        stats = s.step(grad_fn)
        assert s.model.w.tolist() == [-1.0, 0.5, -1.0]
        assert stats.density == pytest.approx((3 / 3 + 2 / 3) / 2)
        assert stats.payload_bytes > 0 and stats.bytes_received >= stats.payload_bytes


def _reference_threshold(r: torch.Tensor, tau: float):
    """The rule written out with whole-vector torch ops: (indices, negative), r updated in place."""
    tau = as_float32(tau)
    idx = torch.nonzero(r.abs() >= tau).flatten()
    sent = r[idx]
    negative = sent < 0
    r[idx] = sent - torch.where(negative, torch.tensor(-tau), torch.tensor(tau))
    return idx.numpy(), negative.numpy()


@pytest.mark.parametrize("numel", [1, 999, 1000, 2503])
@pytest.mark.parametrize("fused", [False, True])
def test_compiled_threshold_matches_the_rule_bit_for_bit(monkeypatch, numel, fused):
    monkeypatch.setattr(gtc, "SENT_CAPACITY", 1000)  # the sent-index buffers grow several times
    gen = torch.Generator().manual_seed(numel)
    r0, g = torch.randn(numel, generator=gen), torch.randn(numel, generator=gen)
    if numel > 10:
        r0[5] = float("nan")  # never sent, stays NaN
    want_r, got_r = r0.clone(), r0.clone()
    want_r += g
    want_idx, want_neg = _reference_threshold(want_r, 1.3)
    workspace = {}
    for _ in range(2):  # the workspace is reused between calls
        got_r.copy_(r0)
        msg = accumulate_and_threshold(got_r, g, 1.3, workspace) if fused else threshold(got_r.add_(g), 1.3, workspace)
        assert msg.indices.dtype == np.int64 and msg.negative.dtype == bool and msg.numel == numel
        np.testing.assert_array_equal(msg.indices, want_idx)
        np.testing.assert_array_equal(msg.negative, want_neg)
        assert torch.equal(got_r.view(torch.int32), want_r.view(torch.int32))  # same bits, NaN included
    assert numel < 10 or 0 < msg.indices.size < numel


def test_threshold_of_a_non_contiguous_residual_updates_it_in_place():
    base = torch.tensor([[0.5, 9.0], [-2.0, 9.0], [1.5, 9.0]])
    column = base[:, 0]  # stride 2
    msg = threshold(column, 1.0)
    assert msg.indices.tolist() == [1, 2] and msg.negative.tolist() == [True, False]
    assert base[:, 0].tolist() == [0.5, -1.0, 0.5] and base[:, 1].tolist() == [9.0] * 3


def test_aggregate_of_several_messages_matches_index_add_then_divide():
    numel = 5000
    rng = np.random.default_rng(3)
    messages = []
    for tau in (0.25, 0.3, 0.7):  # different taus: sums are not multiples of one tau
        idx = np.sort(rng.choice(numel, 800, replace=False))
        messages.append(SparseMessage(idx, rng.random(800) < 0.5, tau, numel))
    for k in (1, 2, 3):
        want = torch.zeros(numel)
        for msg in messages[:k]:
            want.index_add_(0, torch.from_numpy(msg.indices), torch.from_numpy(msg.values()))
        want.div_(k)
        got = aggregate(messages[:k], torch.full((numel,), 7.0))
        assert torch.equal(got, want), k


def test_aggregate_of_payloads_decoded_into_one_workspace_matches_aggregate():
    numel = 4099
    rng = np.random.default_rng(4)
    messages = [SparseMessage(np.sort(rng.choice(numel, k, replace=False)), rng.random(k) < 0.5, tau, numel)
                for k, tau in ((40, 0.25), (3000, 0.5), (7, 0.0), (900, 0.125))]  # varint, bitmap, growth
    payloads = [codec.encode(m, enc) for m, enc in zip(messages, ("compact", "compact", "strom", "compact"))]
    assert {int(p[0]) for p in payloads} == {codec.STROM, codec.VARINT, codec.BITMAP}
    workspace = {}
    for k in (1, 2, 4, 3):  # the buffers grow, then are reused by shorter messages
        want = aggregate(messages[:k], torch.zeros(numel))
        got = aggregate_payloads(payloads[:k], torch.full((numel,), 7.0), workspace)
        assert torch.equal(got.view(torch.int32), want.view(torch.int32)), k
    assert workspace["decoded_indices"].size == 3000
    for order in ([2, 0], [2], [0, 2, 1]):  # tau 0 first: +0.0 everywhere it is sent, as 0 + (-0.0) gives
        want = torch.zeros(numel)
        for i in order:
            want.index_add_(0, torch.from_numpy(messages[i].indices), torch.from_numpy(messages[i].values()))
        want.div_(len(order))
        got = aggregate_payloads([payloads[i] for i in order], torch.full((numel,), 7.0), workspace)
        assert torch.equal(got.view(torch.int32), want.view(torch.int32)), order
    view = codec.decode(payloads[0], numel, workspace)
    assert np.shares_memory(view.indices, workspace["decoded_indices"]) and view.indices.size == 40


@pytest.mark.parametrize("numel", [1, 63, 64, 65, 200, 4099])
@pytest.mark.parametrize("tau", [0.0, 0.01, 1.0, 3.0])
@pytest.mark.parametrize("fused", [False, True])
def test_compiled_threshold_grows_its_buffers_and_matches_the_rule(monkeypatch, numel, tau, fused):
    # index buffers of one element: at tau 0 or 0.01 nearly every element is sent, so they grow many times
    monkeypatch.setattr(gtc, "SENT_CAPACITY", 1)
    gen = torch.Generator().manual_seed(numel)
    r0, g = torch.randn(numel, generator=gen), torch.randn(numel, generator=gen)
    specials = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, tau, -tau, 1.0, -1.0]
    r0[: min(numel, len(specials))] = torch.tensor(specials[:numel])
    g[: min(numel, len(specials))] = 0.0  # r + 0 keeps the special values (|r| == tau exactly: sent)
    workspace = {}
    for _ in range(2):  # the second call starts from the grown buffers
        want_r, got_r = r0.clone(), r0.clone()
        want_r += g
        want_idx, want_neg = _reference_threshold(want_r, tau)
        msg = accumulate_and_threshold(got_r, g, tau, workspace) if fused else threshold(got_r.add_(g), tau, workspace)
        np.testing.assert_array_equal(msg.indices, want_idx)
        np.testing.assert_array_equal(msg.negative, want_neg)
        assert torch.equal(got_r.view(torch.int32), want_r.view(torch.int32))
    assert tau > 0.5 or msg.indices.size >= numel // 2
    assert msg.indices.base is workspace["sent_indices"]  # a view of the grown buffer


def test_threshold_of_a_zero_length_residual_is_an_empty_message():
    msg = accumulate_and_threshold(torch.zeros(0), torch.zeros(0), 1.0, {})
    assert msg.indices.dtype == np.int64 and msg.indices.size == 0 and msg.negative.size == 0 and msg.numel == 0


def test_aggregate_of_overlapping_messages_with_zero_tau_and_empty_ones_matches_index_add():
    numel = 1001
    rng = np.random.default_rng(5)
    full = SparseMessage(np.arange(numel), rng.random(numel) < 0.5, 0.375, numel)
    empty = SparseMessage(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), 0.5, numel)
    zero = SparseMessage(np.sort(rng.choice(numel, 300, replace=False)), rng.random(300) < 0.5, 0.0, numel)
    opposite = SparseMessage(full.indices, ~full.negative, 0.375, numel)  # cancels ``full``: +0.0 sums
    cases = [[zero], [zero, empty], [zero, full], [full, opposite], [empty], [empty, full, zero],
             [full, opposite, full, empty, zero]]  # tau 0 first: +0.0 (0 + -0.0), never -0.0
    for messages in cases:
        want = torch.zeros(numel)
        for msg in messages:
            want.index_add_(0, torch.from_numpy(msg.indices), torch.from_numpy(msg.values()))
        want.div_(len(messages))
        got = aggregate(messages, torch.full((numel,), -3.0))
        assert torch.equal(got.view(torch.int32), want.view(torch.int32)), len(messages)


@pytest.mark.parametrize("threshold_on", ["gradient", "update"])
def test_non_finite_contribution_is_dropped_counted_and_never_enters_the_residual(threshold_on):
    consts = {0: torch.tensor(GRADS[0]), 1: torch.tensor(GRADS[1])}
    poisoned = {"step": 1}

    def grad_fn(worker, model):
        c = consts[worker]
        if worker == 1 and poisoned["step"] == 1:
            c = torch.tensor([float("nan"), 1.0, float("inf")])
        (c * model.w).sum().backward()

    def replica():
        m = Linear3()
        return Replica(m, torch.optim.SGD(m.parameters(), lr=1.0))

    s = build_strategy(GtcConfig(tau=1.0, target_density=None, threshold_on=threshold_on), SimCommunicator(2),
                       replica)
    first = s.step(grad_fn)
    poisoned["step"] = 2
    second = s.step(grad_fn)
    assert (first.dropped, second.dropped) == (1, 0)
    state = s.intra.state_dict()
    residuals = {w: st["residual"] for w, st in state["groups"][(0, 1)].items()}
    assert all(torch.isfinite(r).all() for r in residuals.values())
    sign = 1.0 if threshold_on == "gradient" else -1.0  # the update of SGD at lr 1 is minus the gradient
    assert residuals[1].tolist() == [sign * g for g in GRADS[1]]  # step 2's alone: step 1's never entered
    assert torch.isfinite(s.model.w).all() and state["dropped"] == 1
    assert s.summary.as_dict()["gtc_dropped_nonfinite"] == 1


def test_worker_state_round_trips_with_its_running_density():
    from asr_trainer.sync.gtc_sync import GtcWorker

    worker = GtcWorker(torch.tensor([0.25, -0.5]), as_float32(0.003), density=0.0125)
    back = GtcWorker.from_state_dict(worker.state_dict())
    assert (back.residual.tolist(), back.tau, back.density) == ([0.25, -0.5], worker.tau, 0.0125)
    old = {k: v for k, v in worker.state_dict().items() if k != "density"}  # saved before it was kept
    assert GtcWorker.from_state_dict(old).density is None
