"""Bad input: CTC-impossible cuts filtered and counted; NaN losses skipped; the 1% stop."""

import copy
import math

import pytest
import torch
from lhotse import CutSet

from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.dataset import AsrDataset, ctc_min_frames, filter_ctc_feasible
from asr_trainer.train.loop import default_step, train_epoch
from asr_trainer.train.replica import build_replica
from asr_trainer.train.step import BatchStats
from asr_trainer.train.synthetic import ALPHABET, char_encode, make_tone_cuts

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


def _setup(cuts, max_skip):
    torch.manual_seed(0)
    cfg = load_config(TrainConfig, None, [f"max_skip_fraction={max_skip}"])
    replica = build_replica(load_config(ModelConfig, None, TINY), cfg, len(ALPHABET) + 2)
    good = AsrDataset(char_encode)[cuts.subset(first=3)]
    poisoned = dict(good, features=good["features"].clone())
    poisoned["features"][0, 0, 0] = float("nan")
    return cfg, replica, good, poisoned


def test_nan_batch_is_skipped_without_touching_weights(cuts):
    cfg, replica, good, poisoned = _setup(cuts, max_skip=0.5)
    before = [p.detach().clone() for p in replica.model.parameters()]
    result = train_epoch(replica, [poisoned], default_step(clip_norm=cfg.clip_norm), max_skip_fraction=0.5 + 0.5)
    assert result.skipped == 1 and result.steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, replica.model.parameters()))
    result = train_epoch(replica, [good, poisoned, good], default_step(), max_skip_fraction=0.5)
    assert (result.steps, result.skipped) == (3, 1)
    assert math.isfinite(result.stats.loss_sum) and result.stats.utterances == 6


def _fake_step(replica, batch):
    """A step function that only reports whether its batch was good (no compute)."""
    return BatchStats(loss_sum=1.0 if batch["ok"] else float("nan"), frames=1, utterances=1, ok=batch["ok"]), 1.0


def test_more_than_one_percent_skipped_stops_training():
    good, bad = {"ok": True, "cut_ids": ["g"]}, {"ok": False, "cut_ids": ["b"]}
    result = train_epoch(None, [bad] + [good] * 99, _fake_step, max_skip_fraction=0.01)  # exactly 1%
    assert (result.steps, result.skipped, result.stats.utterances) == (100, 1, 99)
    with pytest.raises(UserError, match="1 of 99 batches"):
        train_epoch(None, [bad] + [good] * 98, _fake_step, max_skip_fraction=0.01)
