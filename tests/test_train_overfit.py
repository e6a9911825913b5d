"""A tiny model overfits 5 tone utterances to 0% greedy WER (forward_backward + clipped_step)."""

import pytest
import torch

from asr_trainer.config import load_config
from asr_trainer.decode.driver import compute_posteriors
from asr_trainer.decode.greedy import GreedyDecoder
from asr_trainer.models import ModelConfig
from asr_trainer.report.wer import compute_wer
from asr_trainer.train.config import TrainConfig
from asr_trainer.data.dataset import AsrDataset
from asr_trainer.train.build import build_replica
from asr_trainer.sync.replica import clipped_step
from asr_trainer.train.step import forward_backward
from asr_trainer.testing.tones import ALPHABET, char_encode, char_id2token, make_tone_cuts


@pytest.mark.slow
def test_tiny_model_overfits_five_utterances(tmp_path):
    torch.manual_seed(0)
    cuts = make_tone_cuts(tmp_path, 5, seed=3)
    model_cfg = load_config(ModelConfig, None, ["tdnn_lstm.conv_dim=48", "tdnn_lstm.lstm_dim=48",
                                                "tdnn_lstm.num_lstm_layers=1", "tdnn_lstm.dropout=0.0"])
    cfg = load_config(TrainConfig, None, ["optim.lr=0.02", "optim.schedule=constant", "optim.warmup_steps=0"])
    replica = build_replica(model_cfg, cfg, num_outputs=len(ALPHABET) + 2)
    batch = AsrDataset(char_encode)[cuts]
    decoder = GreedyDecoder(char_id2token())
    losses, wers = [], []
    for step in range(1, 201):
        stats = forward_backward(replica.model, batch)
        clipped_step(replica, clip_norm=5.0)
        losses.append(stats.loss_per_frame)
        if step % 10 == 0:
            posteriors = compute_posteriors(replica.model.eval(), cuts, max_duration=100)
            results = [(c.id, c.supervisions[0].text.split(), decoder.decode(posteriors[c.id])) for c in cuts]
            wers.append(compute_wer(results, replications=0).wer)
            if wers[-1] == 0.0:
                break
    assert wers[0] > 0.0  # it had something to learn
    assert wers[-1] == 0.0, f"greedy WER every 10 steps: {wers}"
    assert losses[-1] < losses[0] / 10
