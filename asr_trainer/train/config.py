"""Training settings (``conf/train.yaml``); model sizes live in ``conf/model/*.yaml``, data settings in
:class:`asr_trainer.data.config.DataConfig` (the ``data:`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from asr_trainer.data.config import DataConfig


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and per-step LR schedule.

    ``schedule``: ``constant`` (after linear warm-up) or ``inv_sqrt``
    (warm-up, then ``lr * sqrt(warmup_steps / step)``).

    ``lr_scaling``: the large-batch rule for a run whose optimizer step sees another batch than
    ``lr`` was set for. ``reference_batch``: seconds of audio per optimizer step that ``lr`` was
    set for (the baseline's ``data.max_duration``). A step of ``B`` seconds (a worker batch's audio,
    :meth:`DataConfig.batch_audio`: ``data.max_duration``, or the mean utterance for ``max_cuts=1``,
    times the workers whose gradients form one step: all of them under all-reduce and GTC, a group
    under the hybrid, one under BMUF) gets ``lr * (B / reference_batch) ** p``: ``p = 1/2`` for
    ``sqrt`` (Adam; Malladi et al. 2022), ``p = 1`` for ``linear`` (SGD with warm-up; Goyal et al.
    2017), no change for ``none``. See :func:`asr_trainer.train.build.batch_scaled`.
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.98)
    schedule: Literal["constant", "inv_sqrt"] = "inv_sqrt"
    warmup_steps: int = 100
    lr_scaling: Literal["none", "sqrt", "linear"] = "none"
    reference_batch: float = 0.0

    def __post_init__(self) -> None:
        if self.lr_scaling not in ("none", "sqrt", "linear"):
            raise ValueError(f"optim.lr_scaling must be none, sqrt or linear, got {self.lr_scaling!r}")
        if self.lr_scaling != "none" and self.reference_batch <= 0:
            raise ValueError(f"optim.lr_scaling={self.lr_scaling} needs optim.reference_batch > 0 (seconds of audio "
                             "per optimizer step that optim.lr was set for)")
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class CheckpointConfig:
    """``epoch-N.pt`` after every epoch, ``checkpoint-<step>.pt`` every ``every_steps`` (0 = never).

    The last ``keep_last`` of each kind are kept; decoding averages the last
    ``avg`` epochs (``conf/decode.yaml``), so keep ``keep_last >= avg``.
    """

    every_steps: int = 0
    keep_last: int = 3

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise ValueError(f"checkpoint.every_steps must be >= 0, got {self.every_steps}")
        if self.keep_last < 1:
            raise ValueError(f"checkpoint.keep_last must be >= 1, got {self.keep_last}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``asr-trainer train`` needs besides the model sizes and the paths."""

    model_config: str = "conf/model/tdnn_lstm.yaml"
    num_epochs: int = 10
    seed: int = 42
    device: str = "cpu"
    bf16: bool = False
    # simulated dense all-reduce of one-utterance workers as one batched forward/backward
    # (asr_trainer/train/batched.py): the same mean gradient up to float rounding, one dropout stream
    batched_dense: bool = True
    num_threads: int = 2
    clip_norm: float = 5.0
    max_skip_fraction: float = 0.01
    log_every: int = 10
    progress_bar: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        if self.num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1, got {self.num_epochs}")
        if self.clip_norm <= 0:
            raise ValueError(f"clip_norm must be positive, got {self.clip_norm}")
        if not 0.0 <= self.max_skip_fraction < 1.0:
            raise ValueError(f"max_skip_fraction must be in [0, 1), got {self.max_skip_fraction}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch default), got {self.num_threads}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
