"""Build an acoustic model from a :class:`ModelConfig`."""

from __future__ import annotations

from asr_trainer.models.base import CtcModel
from asr_trainer.models.config import ModelConfig
from asr_trainer.models.lstm import Lstm
from asr_trainer.models.tdnn import Tdnn
from asr_trainer.models.tdnn_lstm import TdnnLstm


def build_model(cfg: ModelConfig, num_outputs: int) -> CtcModel:
    """A fresh model with ``num_outputs`` outputs (blank + tokens); weights from the torch RNG.

    Example::

        model = build_model(ModelConfig(), num_outputs=42)
        log_probs, out_lens = model(torch.zeros(2, 300, 80), torch.tensor([300, 250]))
        # log_probs: (2, 100, 42); out_lens: tensor([100, 84])
    """
    if num_outputs < 2:
        raise ValueError(f"num_outputs must be >= 2 (blank + at least one token), got {num_outputs}")
    if cfg.kind == "tdnn":
        return Tdnn(cfg.tdnn, cfg.num_features, num_outputs)
    if cfg.kind == "lstm":
        return Lstm(cfg.lstm, cfg.num_features, num_outputs)
    return TdnnLstm(cfg.tdnn_lstm, cfg.num_features, num_outputs)


def num_parameters(model: CtcModel) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
