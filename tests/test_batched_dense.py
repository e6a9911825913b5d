"""Dense all-reduce of one-utterance workers as one batched forward/backward equals the per-worker path."""

import pytest
import torch

from asr_trainer import checkpoint as ckpt
from asr_trainer.config import load_config
from asr_trainer.data.cuts import load_cuts
from asr_trainer.models import ModelConfig, build_model
from asr_trainer.sync import SimCommunicator, load_sync_config
from asr_trainer.sync import flat_vectors as flat
from asr_trainer.testing.tones import ALPHABET, char_encode, write_tone_corpus
from asr_trainer.train.batched import batched_forward_backward
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.step import forward_backward
from asr_trainer.train.trainer import fit

NUM_OUTPUTS = len(ALPHABET) + 2


def _utterance(n: int, frames: int, tokens: list[int], seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"features": torch.randn(1, frames, 80, generator=gen), "feature_lens": torch.tensor([frames]),
            "tokens": [tokens], "cut_ids": [f"u{n}"]}


@pytest.mark.parametrize("kind", ["tdnn_lstm", "tdnn", "lstm"])
def test_batched_gradient_and_buffers_equal_the_per_worker_sum(kind):
    """5 utterances of different lengths: the batched backward leaves the sum of the 5 per-utterance gradients
    and the BatchNorm running statistics the mean of the 5 per-utterance updates, to float32 rounding."""
    torch.manual_seed(0)
    cfg = load_config(ModelConfig, None, [f"kind={kind}", f"{kind}.dropout=0.0"])
    model = build_model(cfg, NUM_OUTPUTS)
    batches = [_utterance(i, 40 + 17 * i, [1 + i % 5, 2, 3], i) for i in range(5)]
    start = flat.buffers(model)
    total, buffers = torch.zeros_like(flat.params(model)), torch.zeros_like(start)
    for b in batches:
        flat.set_buffers(model, start)
        model.zero_grad(set_to_none=True)
        forward_backward(model, b)
        total += flat.grads(model)
        buffers += flat.buffers(model)
    flat.set_buffers(model, start)
    model.zero_grad(set_to_none=True)
    stats = batched_forward_backward(model, batches)
    assert [s.utterances for s in stats] == [1] * 5 and [s.input_frames for s in stats] == [40 + 17 * i for i in range(5)]
    got = flat.grads(model)
    # float32 rounding: both sides sum ~1e3-1e4 products per weight-gradient element in another order (padded
    # batch against one utterance at a time), so they differ by a few eps * sqrt(terms) relative to the largest
    # element (measured 5e-6); a real difference (statistics over padding, a missing 1/frames) is >= 1e-2
    assert float((got - total).abs().max()) <= 1e-4 * float(total.abs().max()), float((got - total).abs().max())
    if start.numel():
        assert not torch.equal(flat.buffers(model), start)
        assert torch.allclose(flat.buffers(model), buffers / 5, rtol=1e-5, atol=1e-6)


def test_batched_path_declines_batches_of_several_utterances_and_infinite_losses():
    model = build_model(load_config(ModelConfig, None, ["kind=tdnn_lstm"]), NUM_OUTPUTS)
    two = {"features": torch.randn(2, 30, 80), "feature_lens": torch.tensor([30, 20]), "tokens": [[1], [2]]}
    assert batched_forward_backward(model, [two]) is None
    impossible = _utterance(0, 6, [1, 2, 3, 4, 5, 6, 7, 8], 0)  # more tokens than output frames: inf loss
    assert batched_forward_backward(model, [impossible, _utterance(1, 50, [1], 1)]) is None
    assert all(p.grad is None for p in model.parameters())


@pytest.fixture(scope="module")
def tone_cuts(tmp_path_factory):
    return write_tone_corpus(tmp_path_factory.mktemp("batched_tones"), {"train": 24, "dev": 4}) / "cuts"


@pytest.mark.slow
def test_simulated_allreduce_step_is_the_same_batched_or_not(tone_cuts, tmp_path):
    """One step of a 4-worker simulated all-reduce run (4 training cuts, one a worker, no dropout, no
    SpecAugment) through the trainer: the batched path gives the per-worker path's model (parameters and
    BatchNorm statistics) to float32 rounding. One step only: this CTC model amplifies rounding about
    tenfold a step, so after 6 steps the two paths' weights are 0.1-1% apart (measured), as two ring orders are."""
    model = load_config(ModelConfig, None, ["kind=tdnn_lstm", "tdnn_lstm.conv_dim=32", "tdnn_lstm.lstm_dim=32",
                                            "tdnn_lstm.num_lstm_layers=1", "tdnn_lstm.dropout=0.0"])
    sync = load_sync_config("conf/sync/allreduce.yaml", [])
    final = {}
    for batched in (True, False):
        cfg = load_config(TrainConfig, None, ["data.max_duration=5", "data.max_cuts=1", "data.spec_augment=false",
                                              "data.max_train_cuts=4", "optim.name=sgd", "optim.lr=0.05",
                                              "optim.warmup_steps=1", "num_epochs=1", "num_threads=1",
                                              "progress_bar=false", f"batched_dense={str(batched).lower()}"])
        threads = torch.get_num_threads()
        try:
            summary = fit(cfg, model, sync, SimCommunicator(4), tmp_path / str(batched), char_encode, NUM_OUTPUTS,
                          load_cuts(tone_cuts, "synth", "train"), load_cuts(tone_cuts, "synth", "dev"))
        finally:
            torch.set_num_threads(threads)
        final[batched] = (summary["epochs"][0], ckpt.load(tmp_path / str(batched) / "epoch-1.pt", ckpt.ModelFile).model)
    (row_b, model_b), (row_p, model_p) = final[True], final[False]
    assert row_b["steps"] == row_p["steps"] == 1
    assert row_b["train_loss"] == pytest.approx(row_p["train_loss"], rel=1e-5)
    assert row_b["valid_loss"] == pytest.approx(row_p["valid_loss"], rel=1e-4)
    for key, value in model_p.items():
        if value.is_floating_point():
            assert float((model_b[key] - value).abs().max()) <= 1e-4 * max(1.0, float(value.abs().max())), key
