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


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", sorted(TINY))
def test_padding_changes_no_valid_frame(kind, bidirectional):
    """The same 20 frames alone and in a batch padded to 51 (with noise) give the same valid log-probs."""
    overrides = [f"kind={kind}", "num_features=10", *TINY[kind]]
    if kind != "tdnn":
        overrides.append(f"{kind}.bidirectional={str(bidirectional).lower()}")
    torch.manual_seed(0)
    model = build_model(load_config(ModelConfig, None, overrides), num_outputs=5).eval()
    frames = torch.randn(1, 20, 10)
    alone, alone_lens = model(frames, torch.tensor([20]))
    other = torch.randn(1, 51, 10)
    batch = torch.cat([torch.cat([frames, 5 * torch.randn(1, 31, 10)], 1), other])
    padded, padded_lens = model(batch, torch.tensor([20, 51]))
    n = int(alone_lens[0])
    assert int(padded_lens[0]) == n and n < padded.size(1)
    assert torch.allclose(alone[0, :n], padded[0, :n], atol=1e-5)
    assert torch.allclose(model(other, torch.tensor([51]))[0][0], padded[1], atol=1e-5)


def test_default_model_is_about_2m_parameters():
    model = build_model(load_config(ModelConfig, "conf/model/tdnn_lstm.yaml"), num_outputs=40)
    assert 1.5e6 < num_parameters(model) < 2.5e6


def test_bad_size_names_the_setting():
    with pytest.raises(UserError, match="tdnn_lstm.lstm_dim"):
        load_config(ModelConfig, None, ["tdnn_lstm.lstm_dim=0"])


@pytest.mark.parametrize("kind", ["tdnn", "tdnn_lstm"])
def test_layer_and_instance_norm_blocks_are_the_same_in_training_and_at_test(kind):
    """``norm=layer`` and ``instance``: no statistics across utterances, so a training-mode forward (dropout off)
    of an utterance in a padded batch equals its test-mode forward alone; with BatchNorm (the default) it does
    not."""
    frames, other = torch.randn(1, 20, 10), torch.randn(1, 33, 10)
    batch = torch.cat([torch.cat([frames, torch.randn(1, 13, 10)], 1), other])
    for norm, same in (("layer", True), ("instance", True), ("batch", False)):
        torch.manual_seed(0)
        cfg = load_config(ModelConfig, None, [f"kind={kind}", "num_features=10", *TINY[kind], f"{kind}.norm={norm}",
                                              f"{kind}.dropout=0.0"])
        model = build_model(cfg, num_outputs=5)
        alone, lens = model.eval()(frames, torch.tensor([20]))
        trained, _ = model.train()(batch, torch.tensor([20, 33]))
        n = int(lens[0])
        assert torch.allclose(alone[0, :n], trained[0, :n], atol=1e-5) == same, norm
        assert any(b.is_floating_point() for b in model.buffers()) == (norm == "batch")  # running statistics
    with pytest.raises(UserError, match=f"{kind}.norm"):
        load_config(ModelConfig, None, [f"kind={kind}", f"{kind}.norm=group"])
