"""Checkpoint averaging, pruning and RNG state."""

import random

import torch

from asr_trainer.train import checkpoint as ckpt


def _state(seed):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 2, generator=g), "bn.num_batches_tracked": torch.tensor(seed)}


def test_average_equals_hand_average(tmp_path):
    states = [_state(s) for s in (1, 2, 3)]
    paths = []
    for i, s in enumerate(states, 1):
        paths.append(tmp_path / f"epoch-{i}.pt")
        ckpt.save_checkpoint(paths[-1], {"replica": {"model": s}})
    avg = ckpt.average_checkpoints(paths[1:])
    hand = (states[1]["w"] + states[2]["w"]) / 2
    assert torch.allclose(avg["w"], hand, atol=1e-7)
    assert int(avg["bn.num_batches_tracked"]) == 3  # integer buffers from the last


def test_prune_keeps_last_k_in_numeric_order(tmp_path):
    for n in (1, 2, 10, 11):
        ckpt.save_checkpoint(tmp_path / f"epoch-{n}.pt", {})
    ckpt.save_checkpoint(tmp_path / "checkpoint-5.pt", {})
    deleted = ckpt.prune_checkpoints(tmp_path, 2, ckpt.EPOCH_RE)
    assert [p.name for p in deleted] == ["epoch-1.pt", "epoch-2.pt"]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint-5.pt", "epoch-10.pt", "epoch-11.pt"]


def test_rng_state_round_trip():
    state = ckpt.rng_state()
    a = (random.random(), torch.rand(2))
    ckpt.restore_rng(state)
    b = (random.random(), torch.rand(2))
    assert a[0] == b[0] and torch.equal(a[1], b[1])
