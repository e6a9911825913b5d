"""TDNN: stacked dilated 1-D convolutions (Kaldi's time-delay neural network)."""

from __future__ import annotations

import torch
from torch import nn

from asr_trainer.models.base import CtcModel, conv_block, conv_output_lengths, mask_frames, run_conv_block
from asr_trainer.models.config import TdnnConfig


class Tdnn(CtcModel):
    """One conv block per dilation; the first block subsamples frames by ``cfg.subsampling``."""

    def __init__(self, cfg: TdnnConfig, num_features: int, num_outputs: int) -> None:
        super().__init__(cfg.hidden_dim, num_outputs)
        self.cfg = cfg
        self.subsampling_factor = cfg.subsampling
        layers = []
        in_dim = num_features
        for i, dilation in enumerate(cfg.dilations):
            stride = cfg.subsampling if i == 0 else 1
            layers.append(conv_block(in_dim, cfg.hidden_dim, cfg.kernel_size, stride, dilation, cfg.dropout,
                                     cfg.norm))
            in_dim = cfg.hidden_dim
        self.layers = nn.Sequential(*layers)

    def encode(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        h, lens = x.transpose(1, 2), x_lens
        for i, layer in enumerate(self.layers):
            out_lens = self.output_lengths(lens) if i == 0 else lens
            h = run_conv_block(layer, mask_frames(h, lens), out_lens, self.per_sample_norm)
            lens = out_lens
        return h.transpose(1, 2)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        k = self.cfg.kernel_size
        d = self.cfg.dilations[0]
        return conv_output_lengths(lengths, k, self.cfg.subsampling, d * (k - 1) // 2, d)
