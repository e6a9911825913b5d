"""What every acoustic model promises: ``(N, T, F)`` features in, ``(N, T', V)`` CTC log-probs out."""

from __future__ import annotations

import torch
from torch import nn


def conv_output_lengths(lengths: torch.Tensor, kernel_size: int, stride: int, padding: int, dilation: int = 1) -> torch.Tensor:
    """Output lengths of a ``Conv1d`` for input lengths ``lengths`` (int64, frames)."""
    return torch.div(lengths + 2 * padding - dilation * (kernel_size - 1) - 1, stride, rounding_mode="floor") + 1


def mask_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x`` ``(N, C, T)`` with the frames at or after ``lengths`` ``(N,)`` set to 0 (what a conv pads with), so
    a padded batch gives the valid frames exactly what each utterance alone would get."""
    valid = torch.arange(x.size(2), device=x.device)[None, :] < lengths.to(x.device)[:, None]
    return x * valid[:, None, :].to(x.dtype)


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``lstm`` over ``x`` ``(N, T, C)``, batch first; a bidirectional one runs packed, so its backward direction
    starts at each utterance's last valid frame, not in the padding. Returns ``(N, T, H)``."""
    if not lstm.bidirectional:
        return lstm(x)[0]  # the valid frames never see the padding after them
    lengths = lengths.clamp(min=1, max=x.size(1)).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    return nn.utils.rnn.pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.size(1))[0]


class CtcModel(nn.Module):
    """Base class: subclasses implement :meth:`encode` and :meth:`output_lengths`.

    ``forward(x, x_lens)`` takes features ``x`` of shape ``(N, T, F)`` (float,
    zero-padded) and their lengths ``x_lens`` ``(N,)`` in frames; it returns
    ``(log_probs, out_lens)``: log-softmax over ``V = blank + tokens`` of shape
    ``(N, T', V)`` and the valid output lengths ``(N,)`` with
    ``T' = output_lengths(T)``. Index 0 of ``V`` is the CTC blank.
    """

    subsampling_factor: int = 1

    def __init__(self, hidden_dim: int, num_outputs: int) -> None:
        super().__init__()
        self.num_outputs = num_outputs
        self.output = nn.Linear(hidden_dim, num_outputs)
        # True: batch statistics per utterance (a batch of N one-utterance workers; see per_sample_batch_norm)
        self.per_sample_norm = False

    def encode(self, x: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        """``(N, T, F)`` features and their lengths ``(N,)`` -> hidden ``(N, T', H)``; valid frames never
        depend on the padding."""
        raise NotImplementedError

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Number of output frames for ``lengths`` input frames (same shape, int64)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encode(x, x_lens)
        log_probs = self.output(hidden).float().log_softmax(dim=-1)
        out_lens = self.output_lengths(x_lens).clamp(max=log_probs.size(1))
        return log_probs, out_lens


def utterance_moments(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per utterance and channel of ``x`` ``(N, C, T)``, over its ``lengths`` ``(N,)`` valid frames: the mean and
    the (biased) variance, each ``(N, C, 1)``, and the frame count ``(N, 1, 1)`` (at least 1)."""
    valid = (torch.arange(x.size(2), device=x.device)[None, :] < lengths.to(x.device)[:, None]).to(x.dtype)
    valid = valid[:, None, :]
    count = lengths.to(x.device, x.dtype).clamp(min=1)[:, None, None]
    mean = (x * valid).sum(2, keepdim=True) / count
    var = ((x - mean) * valid).pow(2).sum(2, keepdim=True) / count
    return mean, var, count


def per_sample_batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``bn`` in training mode applied to each utterance of ``x`` ``(N, C, T)`` ALONE, over its ``lengths``
    ``(N,)`` valid frames: what ``bn`` gives ``x[n:n+1, :, :lengths[n]]`` by itself. The running statistics
    move by the mean of the N utterances' updates (as N workers' updated buffers averaged would), and
    ``num_batches_tracked`` by N (one forward each). Frames past ``lengths`` come out unspecified."""
    mean, var, count = utterance_moments(x, lengths)
    y = (x - mean) / torch.sqrt(var + bn.eps) * bn.weight[None, :, None] + bn.bias[None, :, None]
    with torch.no_grad():
        unbiased = var * count / (count - 1).clamp(min=1)
        bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean.mean(0).flatten())
        bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * unbiased.mean(0).flatten())
        bn.num_batches_tracked.add_(x.size(0))
    return y


class UtteranceNorm(nn.Module):
    """Each utterance normalised by its own per-channel mean and variance over its valid frames, then a learnt
    per-channel scale and shift: in training and at test alike, whatever the batch (an instance norm; what
    BatchNorm does in training on a one-utterance batch, without running statistics)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, C, T)`` with ``lengths`` ``(N,)`` valid frames -> ``(N, C, T)``; frames past ``lengths``
        come out unspecified."""
        mean, var, _ = utterance_moments(x, lengths)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[None, :, None] + self.bias[None, :, None]


def run_conv_block(block: nn.Sequential, x: torch.Tensor, out_lens: torch.Tensor, per_sample: bool) -> torch.Tensor:
    """One :func:`conv_block` on ``x`` ``(N, C, T)``; ``per_sample``: its BatchNorm normalises each utterance
    over its own ``out_lens`` valid output frames (:func:`per_sample_batch_norm`), as if trained alone
    (LayerNorm and UtteranceNorm blocks do so anyway)."""
    conv, relu, norm, dropout = block
    if isinstance(norm, UtteranceNorm):
        return dropout(norm(relu(conv(x)), out_lens))
    if per_sample and block.training and isinstance(norm, nn.BatchNorm1d):
        return dropout(per_sample_batch_norm(norm, relu(conv(x)), out_lens))
    return block(x)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each frame of ``(N, C, T)``: no statistics across frames or utterances."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def conv_block(in_dim: int, out_dim: int, kernel_size: int, stride: int, dilation: int, dropout: float,
               norm: str = "batch") -> nn.Sequential:
    """Conv1d (length-preserving padding before stride) + ReLU + norm + Dropout, on ``(N, C, T)``; ``norm``:
    ``batch`` (BatchNorm1d), ``layer`` (:class:`ChannelLayerNorm`) or ``instance`` (:class:`UtteranceNorm`:
    run it with :func:`run_conv_block`, which gives it the lengths)."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv1d(in_dim, out_dim, kernel_size, stride=stride, padding=padding, dilation=dilation),
        nn.ReLU(),
        {"batch": nn.BatchNorm1d, "layer": ChannelLayerNorm, "instance": UtteranceNorm}[norm](out_dim),
        nn.Dropout(dropout),
    )
