"""TDNN-LSTM: convolutional front end with frame subsampling, then LSTM layers (icefall tdnn_lstm_ctc style)."""

from __future__ import annotations

import torch
from torch import nn

from asr_trainer.models.base import CtcModel, conv_block, conv_output_lengths, mask_frames, run_conv_block, run_lstm
from asr_trainer.models.config import TdnnLstmConfig

KERNEL_SIZE = 3


class TdnnLstm(CtcModel):
    """Conv blocks (the last one with stride ``cfg.subsampling``), then LSTM + LayerNorm + residual layers."""

    def __init__(self, cfg: TdnnLstmConfig, num_features: int, num_outputs: int) -> None:
        directions = 2 if cfg.bidirectional else 1
        super().__init__(cfg.lstm_dim * directions, num_outputs)
        self.cfg = cfg
        self.subsampling_factor = cfg.subsampling
        convs = []
        in_dim = num_features
        for i in range(cfg.num_conv_layers):
            stride = cfg.subsampling if i == cfg.num_conv_layers - 1 else 1
            convs.append(conv_block(in_dim, cfg.conv_dim, KERNEL_SIZE, stride, 1, cfg.dropout, cfg.norm))
            in_dim = cfg.conv_dim
        self.convs = nn.Sequential(*convs)
        self.lstms = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(cfg.num_lstm_layers):
            lstm_in = cfg.conv_dim if i == 0 else cfg.lstm_dim * directions
            self.lstms.append(nn.LSTM(lstm_in, cfg.lstm_dim, batch_first=True, bidirectional=cfg.bidirectional))
            self.norms.append(nn.LayerNorm(cfg.lstm_dim * directions))
        self.dropout = nn.Dropout(cfg.dropout)

    def encode(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        lens = self.output_lengths(x_lens)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):  # stride-1 convs keep the length; the last one subsamples
            h = run_conv_block(conv, mask_frames(h, x_lens), lens if i == last else x_lens, self.per_sample_norm)
        h = h.transpose(1, 2)
        for i, (lstm, norm) in enumerate(zip(self.lstms, self.norms)):
            out = norm(run_lstm(lstm, h, lens))
            h = self.dropout(out if i == 0 and out.shape != h.shape else out + h)
        return h

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        # Stride-1 convs with padding 1 keep the length; only the last one subsamples.
        return conv_output_lengths(lengths, KERNEL_SIZE, self.cfg.subsampling, 1)
