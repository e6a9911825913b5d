"""Stacked (uni- or bidirectional) LSTM acoustic model, one output per input frame."""

from __future__ import annotations

import torch
from torch import nn

from asr_trainer.models.base import CtcModel, run_lstm
from asr_trainer.models.config import LstmConfig


class Lstm(CtcModel):
    """``nn.LSTM`` with ``cfg.num_layers`` layers; output dim ``hidden_dim`` (x2 if bidirectional)."""

    def __init__(self, cfg: LstmConfig, num_features: int, num_outputs: int) -> None:
        directions = 2 if cfg.bidirectional else 1
        super().__init__(cfg.hidden_dim * directions, num_outputs)
        self.cfg = cfg
        self.lstm = nn.LSTM(
            num_features,
            cfg.hidden_dim,
            num_layers=cfg.num_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)

    def encode(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        return self.dropout(run_lstm(self.lstm, x, x_lens))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths.clone()
