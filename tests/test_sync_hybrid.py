"""Hybrid ends (g = 1 is BMUF, g = N is GTC), configuration errors."""

import pytest
import torch

from asr_trainer.errors import UserError
from asr_trainer.sync import (
    BmufConfig, GtcConfig, HybridConfig, SimCommunicator, build_strategy, load_sync_config,
)
from asr_trainer.testing.toy import run_toy, toy_replica

N = 4
GTC = GtcConfig(tau=0.01, target_density=None)  # fixed tau, eta 1 - 1/M, Nesterov: the settings hand-checked here
BMUF = BmufConfig(block_size=3, block_momentum="linear", nesterov=True, optimizer_state="keep")


def _params(cfg):
    out = run_toy(cfg, SimCommunicator(N), 9)
    return [out[r]["params"] for r in range(N)], [out[r]["buffers"] for r in range(N)]


@pytest.mark.parametrize("group_size, reference", [(1, BMUF), (N, GTC)])
def test_hybrid_ends_equal_bmuf_and_gtc(group_size, reference):
    hybrid, hybrid_bufs = _params(HybridConfig(group_size=group_size, gtc=GTC, bmuf=BMUF))
    ref, ref_bufs = _params(reference)
    for a, b in zip(hybrid + hybrid_bufs, ref + ref_bufs):
        assert torch.equal(a, b)


def test_hybrid_middle_differs_from_both_ends():
    mid = _params(HybridConfig(group_size=2, gtc=GTC, bmuf=BMUF))[0][0]
    assert not torch.equal(mid, _params(GTC)[0][0]) and not torch.equal(mid, _params(BMUF)[0][0])


def test_group_members_hold_the_same_model_between_blocks():
    s = build_strategy(HybridConfig(group_size=2, gtc=GTC, bmuf=BMUF), SimCommunicator(N), toy_replica)
    assert len(s.states) == 2 and s.bmuf.eta == pytest.approx(1 - 1 / 2)  # eta = 1 - 1/(N/g)
    assert [gs.members for gs in s.states] == [[0, 1], [2, 3]]


@pytest.mark.parametrize("path, overrides, setting", [
    ("conf/sync/hybrid.yaml", ["group_size=3"], "group_size"),
    ("conf/sync/gtc.yaml", ["tau=0"], "tau"),
    ("conf/sync/gtc.yaml", ["tau=-1"], "tau"),
    ("conf/sync/bmuf.yaml", ["block_momentum=1.0"], "block_momentum"),
    ("conf/sync/bmuf.yaml", ["block_momentum=-0.1"], "block_momentum"),
    ("conf/sync/hybrid.yaml", ["bmuf.block_momentum=1.5"], "block_momentum"),
    ("conf/sync/hybrid.yaml", ["gtc.tau=0"], "tau"),
    ("conf/sync/bmuf.yaml", ["block_size=0"], "block_size"),
    ("conf/sync/gtc.yaml", ["encoding=zip"], "encoding"),
])
def test_misconfiguration_names_the_setting(path, overrides, setting):
    with pytest.raises(UserError, match=setting):
        cfg = load_sync_config(path, overrides)
        build_strategy(cfg, SimCommunicator(N), toy_replica)


@pytest.mark.parametrize("name", ["none", "allreduce", "gtc", "bmuf", "hybrid"])
def test_shipped_configs_load(name):
    cfg = load_sync_config(f"conf/sync/{name}.yaml")
    assert cfg.name == name
    assert load_sync_config(None, [f"name={name}"]).name == name
