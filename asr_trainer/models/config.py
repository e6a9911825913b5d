"""Model settings: one frozen dataclass per architecture, chosen by ``ModelConfig.kind``.

``conf/model/<kind>.yaml`` sets ``kind`` and the matching section; the other
sections keep their defaults and are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args


def _positive(name: str, value: int | float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def _dropout(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


# The conv blocks' normalisation: "batch" (BatchNorm: statistics of the batch in training, running averages
# at test), "layer" (LayerNorm over the channels of each frame) or "instance" (each utterance by its own
# statistics over its valid frames, in training and at test). With one-utterance worker batches BatchNorm
# normalises each utterance by its own statistics in training but by running averages at test; "layer" and
# "instance" are the same in training and at test whatever the batch ("instance": the scaling study's).
Norm = Literal["batch", "layer", "instance"]


def _norm(name: str, value: str) -> None:
    if value not in get_args(Norm):
        raise ValueError(f"{name} must be one of {list(get_args(Norm))}, got {value!r}")


@dataclass(frozen=True)
class TdnnConfig:
    """Dilated 1-D convolutions (Kaldi's TDNN): one layer per entry of ``dilations``.

    Every layer has kernel ``kernel_size``; the first layer has stride
    ``subsampling`` (frame subsampling factor of the whole model).
    """

    hidden_dim: int = 384
    dilations: tuple[int, ...] = (1, 1, 1, 3, 3, 3)
    kernel_size: int = 3
    subsampling: int = 3
    dropout: float = 0.1
    norm: Norm = "batch"

    def __post_init__(self) -> None:
        _norm("tdnn.norm", self.norm)
        _positive("tdnn.hidden_dim", self.hidden_dim)
        _positive("tdnn.subsampling", self.subsampling)
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"tdnn.dilations must be a non-empty list of ints >= 1, got {self.dilations}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"tdnn.kernel_size must be odd and >= 1, got {self.kernel_size}")
        _dropout("tdnn.dropout", self.dropout)


@dataclass(frozen=True)
class LstmConfig:
    """Stacked LSTM straight on the features (no subsampling)."""

    hidden_dim: int = 320
    num_layers: int = 3
    bidirectional: bool = False
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _positive("lstm.hidden_dim", self.hidden_dim)
        _positive("lstm.num_layers", self.num_layers)
        _dropout("lstm.dropout", self.dropout)


@dataclass(frozen=True)
class TdnnLstmConfig:
    """Convolutional front end (last conv has stride ``subsampling``), then LSTM layers.

    In the manner of icefall's ``tdnn_lstm_ctc``: Conv1d + ReLU + BatchNorm layers (``norm: layer``:
    LayerNorm), then stacked LSTMs each followed by LayerNorm and a residual connection.
    """

    conv_dim: int = 256
    num_conv_layers: int = 3
    lstm_dim: int = 256
    num_lstm_layers: int = 3
    bidirectional: bool = False
    subsampling: int = 3
    dropout: float = 0.1
    norm: Norm = "batch"

    def __post_init__(self) -> None:
        _norm("tdnn_lstm.norm", self.norm)
        for name in ("conv_dim", "num_conv_layers", "lstm_dim", "num_lstm_layers", "subsampling"):
            _positive(f"tdnn_lstm.{name}", getattr(self, name))
        _dropout("tdnn_lstm.dropout", self.dropout)


@dataclass(frozen=True)
class ModelConfig:
    """Which architecture to build, and its sizes."""

    kind: Literal["tdnn", "lstm", "tdnn_lstm"] = "tdnn_lstm"
    num_features: int = 80
    tdnn: TdnnConfig = field(default_factory=TdnnConfig)
    lstm: LstmConfig = field(default_factory=LstmConfig)
    tdnn_lstm: TdnnLstmConfig = field(default_factory=TdnnLstmConfig)

    def __post_init__(self) -> None:
        _positive("num_features", self.num_features)
