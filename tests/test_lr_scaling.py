"""Learning-rate scaling for the batch of one optimizer step (issue 13 item 2): the rules on hand values,
which workers form a step per strategy, and a simulated all-reduce run whose optimizer uses the scaled
rate while its train.yaml keeps the setting as given."""

import math

import pytest
import yaml

from asr_trainer.config import load_config
from asr_trainer.data.cuts import mean_duration
from asr_trainer.models import ModelConfig
from asr_trainer.sync import AllReduceConfig, BmufConfig, GtcConfig, HybridConfig, NoSyncConfig, SimCommunicator
from asr_trainer.sync.config import workers_per_step
from asr_trainer.testing.tones import ALPHABET, char_encode, make_tone_cuts
from asr_trainer.train.build import batch_scaled
from asr_trainer.train.config import OptimConfig, TrainConfig
from asr_trainer.train.trainer import fit, step_batch_lr


@pytest.mark.parametrize("rule, factor", [("none", 1.0), ("sqrt", 3.0), ("linear", 9.0)])
def test_the_rules_on_hand_values(rule, factor):
    cfg = OptimConfig(lr=0.002, lr_scaling=rule, reference_batch=20.0 if rule != "none" else 0.0)
    assert batch_scaled(cfg, 180.0).lr == pytest.approx(0.002 * factor)  # 180 s against 20 s: 9x the batch
    assert batch_scaled(cfg, 180.0).lr_scaling == rule  # the setting stays; only lr changes


def test_a_smaller_batch_scales_down():
    cfg = OptimConfig(lr=0.004, lr_scaling="sqrt", reference_batch=60.0)
    assert batch_scaled(cfg, 15.0).lr == pytest.approx(0.002)


def test_scaling_needs_a_reference_batch():
    with pytest.raises(ValueError, match="needs optim.reference_batch > 0"):
        OptimConfig(lr_scaling="sqrt")
    with pytest.raises(ValueError, match="must be none, sqrt or linear"):
        OptimConfig(lr_scaling="cubic", reference_batch=1.0)


def test_workers_that_form_one_optimizer_step():
    assert workers_per_step(AllReduceConfig(), 64) == 64
    assert workers_per_step(GtcConfig(), 64) == 64
    assert workers_per_step(HybridConfig(group_size=8), 64) == 8
    assert workers_per_step(BmufConfig(), 64) == 1
    assert workers_per_step(NoSyncConfig(), 1) == 1


@pytest.mark.parametrize("sync, factor", [(AllReduceConfig(), 2.0), (HybridConfig(group_size=2), math.sqrt(2)),
                                          (BmufConfig(), 1.0)])
def test_step_batch_lr_per_strategy(sync, factor):
    cfg = load_config(TrainConfig, None, ["data.max_duration=10", "optim.lr=0.001", "optim.lr_scaling=sqrt",
                                          "optim.reference_batch=10"])
    assert step_batch_lr(cfg, sync, 4, no_cuts).optim.lr == pytest.approx(0.001 * factor)  # 4 x 10 s, 2 x 10 s, 10 s


def no_cuts() -> float:
    raise AssertionError("a batch without max_cuts fills max_duration: the cuts' mean is not read")


@pytest.mark.parametrize("max_cuts, mean_cut, per_worker", [(1, 2.5, 2.5), (2, 2.5, 5.0), (1, 30.0, 16.0)])
def test_a_max_cuts_batch_holds_its_utterances_audio(max_cuts, mean_cut, per_worker):
    """One-utterance worker batches (the scaling study's) are the mean utterance long, not max_duration:
    128 of 2.5 s against 20 s is 16x the batch; max_duration still caps a batch of long cuts."""
    cfg = load_config(TrainConfig, None, ["data.max_duration=16", f"data.max_cuts={max_cuts}", "optim.lr=0.001",
                                          "optim.lr_scaling=linear", "optim.reference_batch=20"])
    lr = step_batch_lr(cfg, AllReduceConfig(), 128, lambda: mean_cut).optim.lr
    assert lr == pytest.approx(0.001 * 128 * per_worker / 20)


def test_mean_duration_of_a_cut_set(tmp_path):
    cuts = make_tone_cuts(tmp_path, 5, seed=3)
    durations = [c.duration for c in cuts]
    assert len(set(durations)) > 1  # the tones differ in length: a mean that could be wrong
    assert mean_duration(cuts) == pytest.approx(sum(durations) / 5)
    assert mean_duration(cuts.filter(lambda c: False)) == 0.0


def test_no_scaling_leaves_the_settings_as_given():
    cfg = load_config(TrainConfig, None, ["data.max_cuts=1"])
    assert step_batch_lr(cfg, AllReduceConfig(), 128, no_cuts) is cfg


def test_a_simulated_run_steps_with_the_scaled_rate_and_records_the_setting(tmp_path):
    train = make_tone_cuts(tmp_path / "train", 16, seed=1)
    dev = make_tone_cuts(tmp_path / "dev", 4, seed=2)
    model_cfg = load_config(ModelConfig, None, ["tdnn_lstm.conv_dim=16", "tdnn_lstm.lstm_dim=16",
                                                 "tdnn_lstm.num_lstm_layers=1"])
    cfg = load_config(TrainConfig, None, [
        "num_epochs=1", "progress_bar=false", "log_every=1", "data.max_duration=4", "optim.lr=0.001", "optim.warmup_steps=0",
        "optim.schedule=constant", "optim.lr_scaling=linear", "optim.reference_batch=2"])
    fit(cfg, model_cfg, AllReduceConfig(), SimCommunicator(4), tmp_path / "exp", char_encode, len(ALPHABET) + 2,
        train, dev)
    summary = yaml.safe_load((tmp_path / "exp" / "train.yaml").read_text())
    assert summary["optim"]["lr"] == 0.001 and summary["optim"]["lr_scaling"] == "linear"  # as given
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "exp" / "tensorboard"))
    events.Reload()
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs and all(v == pytest.approx(0.001 * 4 * 4 / 2) for v in lrs)  # 4 workers x 4 s against 2 s: 8x
