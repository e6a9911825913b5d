"""Output shapes, lengths and subsampling of every acoustic model."""

import pytest
import torch

from asr_trainer.config import load_config
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig, build_model, num_parameters

TINY = {
    "tdnn": ["tdnn.hidden_dim=16", "tdnn.dilations=[1,2,3]"],
    "lstm": ["lstm.hidden_dim=8", "lstm.num_layers=2", "lstm.bidirectional=true"],
    "tdnn_lstm": ["tdnn_lstm.conv_dim=16", "tdnn_lstm.lstm_dim=16", "tdnn_lstm.num_lstm_layers=2"],
}
SUBSAMPLING = {"tdnn": 3, "lstm": 1, "tdnn_lstm": 3}


@pytest.mark.parametrize("kind", sorted(TINY))
def test_shapes_and_lengths(kind):
    cfg = load_config(ModelConfig, None, [f"kind={kind}", "num_features=10", *TINY[kind]])
    model = build_model(cfg, num_outputs=7).eval()
    lens = torch.tensor([31, 30, 17, 4])
    log_probs, out_lens = model(torch.randn(4, 31, 10), lens)
    s = SUBSAMPLING[kind]
    expected = (lens - 1) // s + 1  # ceil(T / s)
    assert model.subsampling_factor == s
    assert log_probs.shape == (4, int(expected[0]), 7)
    assert torch.equal(out_lens, expected)
    # log-softmax over blank + tokens: each frame is a distribution
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(4, int(expected[0])), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(TINY))
def test_padding_does_not_change_valid_lengths_shape(kind):
    cfg = load_config(ModelConfig, None, [f"kind={kind}", "num_features=10", *TINY[kind]])
    model = build_model(cfg, num_outputs=5).eval()
    _, out_short = model(torch.randn(1, 20, 10), torch.tensor([20]))
    _, out_long = model(torch.randn(1, 50, 10), torch.tensor([20]))
    assert torch.equal(out_short, out_long)


def test_default_model_is_about_2m_parameters():
    model = build_model(load_config(ModelConfig, "conf/model/tdnn_lstm.yaml"), num_outputs=40)
    assert 1.5e6 < num_parameters(model) < 2.5e6


def test_bad_size_names_the_setting():
    with pytest.raises(UserError, match="tdnn_lstm.lstm_dim"):
        load_config(ModelConfig, None, ["tdnn_lstm.lstm_dim=0"])
