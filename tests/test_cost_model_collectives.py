"""Cost-model collectives and strategies against numbers computed by hand."""

import math

import pytest

from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.report.cost_model import (
    Scenario, StepTime, Workload, allgather_s, allreduce_s, broadcast_s, ring_allgather_s,
    ring_allreduce_s, speedup, step_time, tree_broadcast_s, workload_from_sync_stats,
)
from asr_trainer.report.network import Link, Topology

LINK = Link(latency_s=1e-5, bandwidth_Bps=1e9)  # 10 us, 1 GB/s


def test_ring_allreduce_by_hand():
    # 100 MB among 4: 2*3 hops of 10 us + 2*3/4 * 1e8 B / 1e9 B/s = 60 us + 150 ms
    assert ring_allreduce_s(1e8, 4, LINK) == pytest.approx(60e-6 + 0.150)
    # 8 workers, 1 MB: 14 * 10 us + 1.75 * 1 ms
    assert ring_allreduce_s(1e6, 8, LINK) == pytest.approx(140e-6 + 1.75e-3)
    assert ring_allreduce_s(1e6, 1, LINK) == 0.0


def test_allgather_padding_and_broadcast_by_hand():
    # 4 workers, mean 1 kB, max 3 kB: padded = 3*(10us + 3us) + size exchange 3*(10us + 8ns)
    padded = ring_allgather_s(1e3, 3e3, 4, LINK, padded=True)
    assert padded == pytest.approx(3 * 13e-6 + 3 * (10e-6 + 8e-9))
    assert ring_allgather_s(1e3, 3e3, 4, LINK, padded=False) == pytest.approx(3 * 11e-6)
    # tree broadcast of 1 MB to 8: 3 rounds of (10 us + 1 ms)
    assert tree_broadcast_s(1e6, 8, LINK) == pytest.approx(3 * 1.01e-3)


def test_hierarchical_allreduce_by_hand():
    intra, inter = Link(0.0, 1e10), Link(1e-5, 1e9)
    topo = Topology(4, intra, inter)
    n = 1e8
    # inside one node: plain ring on the intra link
    assert allreduce_s(n, 4, topo) == pytest.approx(2 * 3 / 4 * n / 1e10)
    # 16 workers on 4 nodes: intra ring (4) + 4 rings on n/4 sharing the NIC (1e9/4 each)
    expect = 2 * 3 / 4 * n / 1e10 + (2 * 3 * 1e-5 + 2 * 3 / 4 * (n / 4) / (1e9 / 4))
    assert allreduce_s(n, 16, topo) == pytest.approx(expect)
    # the NIC term equals a flat ring's bandwidth term over the inter link
    assert allreduce_s(n, 16, topo) < ring_allreduce_s(n, 16, inter)


def test_allgather_cost_grows_with_workers():
    topo = Topology(8, Link(5e-6, 1e11), Link(3e-5, 3e9))
    times = [allgather_s(1e5, 1.5e5, n, topo) for n in (8, 16, 32, 64, 128)]
    assert all(a < b for a, b in zip(times, times[1:]))
    # each worker receives n-1 messages: at least that many bytes over the slowest link
    assert times[-1] > 120 * 1e5 / 3e9
    assert broadcast_s(1e6, 16, topo) == pytest.approx(
        tree_broadcast_s(1e6, 2, topo.inter) + tree_broadcast_s(1e6, 8, topo.intra))


def test_strategy_step_times_by_hand():
    topo = Topology(1, LINK, LINK)  # every worker its own node: flat ring on LINK
    w = Workload(params=1_000_000, compute_s=0.1, gtc_density=0.01, bytes_per_element=4,
                 pad_ratio=1.0, encode_s=0.0, decode_s_per_element=0.0, bmuf_block=10,
                 bmuf_update_s=0.0, hybrid_group=2, padded_allgather=False)
    ar = ring_allreduce_s(4e6, 4, LINK)
    assert step_time("allreduce", 4, w, topo).total == pytest.approx(0.1 + ar)
    assert step_time("bmuf", 4, w, topo).total == pytest.approx(0.1 + ar / 10)
    # GTC: 3 messages of 1e4 elements * 4 B, flat ring (per_node 1)
    assert step_time("gtc", 4, w, topo).communicate == pytest.approx(3 * LINK.send(4e4))
    assert speedup("allreduce", 4, w, topo) == pytest.approx(4 * 0.1 / (0.1 + ar))
    assert step_time("gtc", 1, w, topo) == StepTime(0.1)


def test_hybrid_ends_match_gtc_and_bmuf():
    topo = Topology(8, Link(5e-6, 1e11), Link(3e-5, 3e9))
    base = dict(bmuf_update_s=0.0)
    w1 = Workload(hybrid_group=1, **base)
    bmuf = step_time("bmuf", 64, w1, topo).total
    # g = 1: no GTC, BMUF among 64 reps (+ a broadcast to a group of 1, which is free)
    assert step_time("hybrid", 64, w1, topo).total == pytest.approx(bmuf)
    w64 = Workload(hybrid_group=64, **base)
    gtc = step_time("gtc", 64, w64, topo).total
    hyb = step_time("hybrid", 64, w64, topo).total
    # g = N: GTC plus only the in-group broadcast every block (BMUF among one rep is free)
    assert hyb == pytest.approx(gtc + broadcast_s(w64.model_bytes, 64, topo) / w64.bmuf_block)


def test_bad_settings_are_clear():
    with pytest.raises(ValueError, match="gtc_density"):
        Workload(gtc_density=0.0)
    with pytest.raises(ValueError, match="divide"):
        step_time("hybrid", 12, Workload(hybrid_group=8), Topology(8, LINK, LINK))
    with pytest.raises(ValueError, match="unknown strategy"):
        step_time("sgd", 4, Workload(), Topology(8, LINK, LINK))
    with pytest.raises(UserError, match="inter_link"):
        load_config(Scenario, None, ["inter_link=token_ring"])


def test_workload_from_sync_stats():
    stats = {"strategy": "gtc", "workers": 4, "group_size": 4,
             "bytes_sent_per_worker_per_step": 8000.0, "bytes_received_per_worker_per_step": 24000.0,
             "gtc_density": 0.002, "time_per_step_s": {"compute": 0.05, "encode_decode": 0.002,
                                                       "communicate": 0.01}, "steps": 10}
    w = workload_from_sync_stats(stats, params=1_000_000)
    assert w.compute_s == 0.05 and w.encode_s == 0.002 and w.hybrid_group == 4
    assert w.message_bytes == pytest.approx(8000.0)
    assert math.isclose(w.bytes_per_element, 4.0)
