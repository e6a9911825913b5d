"""Bad input: CTC-impossible cuts filtered and counted; NaN batches skipped (the trainer's one rule); the 1% stop."""

import contextlib
import copy
import functools
import math
import types

import pytest
import torch
from lhotse import CutSet

from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.train.config import TrainConfig
from asr_trainer.data.cuts import ctc_min_frames, filter_ctc_feasible
from asr_trainer.data.dataset import AsrDataset
from asr_trainer.sync import NoSyncConfig, SimCommunicator, build_strategy, clipped_step
from asr_trainer.train.build import build_replica
from asr_trainer.train.epoch import EpochResult, check_skips
from asr_trainer.train.step import BatchStats
from asr_trainer.train.trainer import make_grad_fn
from asr_trainer.testing.tones import ALPHABET, char_encode, make_tone_cuts

TINY = ["tdnn_lstm.conv_dim=8", "tdnn_lstm.lstm_dim=8", "tdnn_lstm.num_lstm_layers=1"]


@pytest.fixture(scope="module")
def cuts(tmp_path_factory):
    return make_tone_cuts(tmp_path_factory.mktemp("toy"), 6, seed=1)


def test_ctc_min_frames_counts_repeats():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 5 + 3
    assert ctc_min_frames([]) == 0


def test_label_too_long_is_filtered_and_counted(cuts):
    bad = []
    for i, cut in enumerate(list(cuts)[:2]):
        cut = copy.deepcopy(cut)
        cut.id = f"bad{i}"
        frames_out = (cut.num_frames - 1) // 3 + 1
        # L repeated labels need 2L - 1 frames: L <= T' fits a naive check, 2L - 1 > T' does not
        cut.supervisions[0].text = "A" * ((frames_out + 3) // 2)
        assert len(char_encode(cut.supervisions[0].text)) <= frames_out
        assert ctc_min_frames(char_encode(cut.supervisions[0].text)) > frames_out
        bad.append(cut)
    kept, removed = filter_ctc_feasible(cuts + CutSet.from_cuts(bad), char_encode, lambda n: (n - 1) // 3 + 1)
    assert removed == 2
    assert sorted(kept.ids) == sorted(cuts.ids)


def test_all_filtered_is_a_user_error(cuts):
    with pytest.raises(UserError, match="no trainable cuts"):
        filter_ctc_feasible(cuts, char_encode, lambda n: 0)


class _OneBatch:
    """The trainer's view of the data (``take``, ``rng.active``) for fixed batches, one per call."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.rng = self

    def take(self, worker):
        return self.batches.pop(0)

    @contextlib.contextmanager
    def active(self, worker):
        yield


def _baseline_step(cuts, batches):
    """A 1-worker ``sync none`` strategy and the trainer's grad_fn over ``batches``."""
    torch.manual_seed(0)
    cfg = load_config(TrainConfig, None, [])
    model_cfg = load_config(ModelConfig, None, TINY)
    replica = functools.partial(build_replica, model_cfg, cfg, len(ALPHABET) + 2)
    strategy = build_strategy(NoSyncConfig(), SimCommunicator(1), replica,
                              functools.partial(clipped_step, clip_norm=cfg.clip_norm))
    run = types.SimpleNamespace(cfg=cfg, data=_OneBatch(batches))
    return strategy, make_grad_fn(run)


def test_nan_batch_is_skipped_without_touching_weights(cuts):
    good = AsrDataset(char_encode)[cuts.subset(first=3)]
    poisoned = dict(good, features=good["features"].clone())
    poisoned["features"][0, 0, 0] = float("nan")
    strategy, grad_fn = _baseline_step(cuts, [poisoned, good])
    before = [p.detach().clone() for p in strategy.model.parameters()]
    statistics = lambda: [b.clone() for b in strategy.model.buffers() if b.is_floating_point()]  # noqa: E731
    buffers = statistics()  # BatchNorm statistics
    (stats,) = strategy.step(grad_fn).worker_stats
    assert not stats.ok
    assert all(torch.equal(a, b) for a, b in zip(before, strategy.model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(buffers, statistics()))
    (stats,) = strategy.step(grad_fn).worker_stats
    assert stats.ok and math.isfinite(stats.loss_sum) and stats.utterances == 3
    assert not all(torch.equal(a, b) for a, b in zip(before, strategy.model.parameters()))


def test_more_than_one_percent_skipped_stops_training():
    check_skips(EpochResult(BatchStats(utterances=99), steps=100, skipped=1), max_skip_fraction=0.01)  # exactly 1%
    with pytest.raises(UserError, match="2 of 100 batches"):
        check_skips(EpochResult(steps=100, skipped=2), max_skip_fraction=0.01)
