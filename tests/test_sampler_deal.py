"""One global sampler dealt to N workers gives worker w exactly lhotse's rank-w shard.

lhotse's per-rank samplers (``rank=w, world_size=N``) are the reference: the dealt batches
must hold the same cut ids in the same order, round by round, over two epochs, for several
N, with ``drop_last`` false and true (the last round redistributed or dropped), through the
bucketing sampler and the plain one (tiny sets), and from a mid-epoch state_dict.
"""

import pytest
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut

from asr_trainer.data.config import DataConfig
from asr_trainer.data.sampler import DealtSampler, make_train_sampler

SEED = 7


def _cuts(n: int) -> CutSet:
    """``n`` cuts of 0.3-1.7 s (no audio: the samplers read durations only)."""
    return CutSet.from_cuts(dummy_cut(i, duration=0.3 + (i * 37 % 15) / 10) for i in range(n))


def _ids(batch: CutSet) -> list[str]:
    return [c.id for c in batch]


def _per_rank(cuts: CutSet, cfg: DataConfig, n: int, epoch: int) -> list[list[list[str]]]:
    """Per rank, lhotse's batches (cut ids) of ``epoch``."""
    out = []
    for rank in range(n):
        sampler = make_train_sampler(cuts, cfg, rank=rank, world_size=n, seed=SEED)
        sampler.set_epoch(epoch)
        out.append([_ids(b) for b in sampler])
    return out


def _dealt(dealt: DealtSampler, n: int) -> list[list[list[str]]]:
    """Per worker, the dealt batches for the rest of the epoch (the shards read in lockstep)."""
    shards = [dealt.shard(w) for w in range(n)]
    out: list[list[list[str]]] = [[] for _ in range(n)]
    while True:
        batches = [next(s, None) for s in shards]
        if any(b is None for b in batches):
            assert all(b is None for b in batches), "every worker runs out at the same round"
            return out
        for w, b in enumerate(batches):
            out[w].append(_ids(b))


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n,num_cuts,max_duration", [
    (1, 41, 2.0), (2, 41, 2.0), (3, 41, 2.0), (5, 41, 1.0), (8, 41, 2.0), (16, 41, 0.5),
    (64, 41, 1.0),  # fewer batches than workers: one short round, duplicates when drop_last is false
    (3, 3, 2.0), (4, 2, 5.0),  # SimpleCutSampler (fewer than 2 cuts per bucket)
])
@pytest.mark.parametrize("max_cuts", [0, 1, 2])
def test_dealt_batches_equal_lhotse_per_rank_batches(n, num_cuts, max_duration, drop_last, max_cuts):
    cuts, cfg = _cuts(num_cuts), DataConfig(max_duration=max_duration, drop_last=drop_last, max_cuts=max_cuts)
    dealt = DealtSampler(make_train_sampler(cuts, cfg, world_size=n, seed=SEED))
    for epoch in (1, 2):
        dealt.start_epoch(epoch)
        want = _per_rank(cuts, cfg, n, epoch)
        assert _dealt(dealt, n) == want
        assert dealt.rounds == len(want[0])
    if not drop_last:  # every cut is trained on
        assert {i for rank in want for b in rank for i in b} >= {c.id for c in cuts}
    if max_cuts:
        assert max((len(b) for rank in want for b in rank), default=0) <= max_cuts


@pytest.mark.parametrize("max_cuts", [0, 1])
@pytest.mark.parametrize("n,stop", [(1, 5), (3, 2), (8, 1), (8, 3)])
def test_dealt_sampler_resumes_mid_epoch_exactly(n, stop, max_cuts):
    cuts, cfg = _cuts(41), DataConfig(max_duration=1.5, max_cuts=max_cuts)
    whole = DealtSampler(make_train_sampler(cuts, cfg, world_size=n, seed=SEED))
    whole.start_epoch(3)
    want = _dealt(whole, n)
    first = DealtSampler(make_train_sampler(cuts, cfg, world_size=n, seed=SEED))
    first.start_epoch(3)
    shards = [first.shard(w) for w in range(n)]
    head = [[_ids(next(s)) for _ in range(stop)] for s in shards]
    state = first.state_dict()
    assert state == {"epoch": 3, "rounds": stop}
    resumed = DealtSampler(make_train_sampler(cuts, cfg, world_size=n, seed=SEED))
    resumed.load_state_dict(state)
    resumed.start_epoch(3, restored=True)
    tail = _dealt(resumed, n)
    assert [h + t for h, t in zip(head, tail)] == want


def test_one_cut_batches_at_any_max_duration():
    """``max_cuts=1``: every batch is one utterance, also for cuts longer than ``max_duration``; every cut
    of the epoch is in exactly one batch (41 cuts over 4 workers: 11 rounds, the last one redistributed)."""
    cuts = _cuts(41)
    batches = _per_rank(cuts, DataConfig(max_duration=0.5, max_cuts=1), 4, 1)
    assert all(len(b) == 1 for rank in batches for b in rank)
    assert [len(rank) for rank in batches] == [11] * 4
    ids = [b[0] for rank in batches for b in rank]
    assert set(ids) >= {c.id for c in cuts}


def test_validation_batches_keep_their_own_size():
    """``valid_max_duration`` sizes validation batches whatever the training ``max_duration`` (0: the same)."""
    from asr_trainer.data.sampler import make_valid_sampler

    cuts = _cuts(41)
    small = list(make_valid_sampler(cuts, DataConfig(max_duration=1.0)))
    big = list(make_valid_sampler(cuts, DataConfig(max_duration=1.0, valid_max_duration=20.0)))
    assert len(big) < len(small) and sum(len(b) for b in big) == sum(len(b) for b in small) == 41
    assert max(sum(c.duration for c in b) for b in big) <= 20.0
