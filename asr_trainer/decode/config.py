"""Decoding settings (``conf/decode.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DecodeConfig:
    """Which model, which sets, and the HLG search settings.

    The model is the average of epochs ``epoch - avg + 1 .. epoch`` (``epoch=0``:
    the last saved epoch). The HLG acoustic scale (among ``acoustic_scales``) and the
    blank penalty (among ``blank_penalties``, nats off the blank log-prob; greedy too)
    are chosen on ``dev_split`` only, then applied to ``test_splits``
    (:mod:`asr_trainer.decode.tuning`).
    """

    corpus: str = "synth"
    dev_split: str = "dev"
    test_splits: tuple[str, ...] = ("test",)
    epoch: int = 0
    avg: int = 2
    beam: float = 12.0
    max_active: int = 3000
    min_active: int = 200
    acoustic_scales: tuple[float, ...] = (0.5, 0.7, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 8.0)
    blank_penalties: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    max_duration: float = 300.0
    device: str = "cpu"
    num_threads: int = 2
    bootstrap_replications: int = 10000
    decoder: Literal["kaldi", "k2"] = "kaldi"   # the HLG search: kaldi-decoder, or k2 where it is installed
    save_posteriors: bool = False               # write posteriors-<split>.npz (for the k2 cross-check)

    def __post_init__(self) -> None:
        if self.avg < 1:
            raise ValueError(f"avg must be >= 1, got {self.avg}")
        if self.epoch < 0:
            raise ValueError(f"epoch must be >= 0 (0 = last), got {self.epoch}")
        if self.beam <= 0:
            raise ValueError(f"beam must be positive, got {self.beam}")
        if self.min_active < 0 or self.max_active < max(self.min_active, 1):
            raise ValueError(f"max_active ({self.max_active}) must be >= min_active ({self.min_active}) and >= 1")
        if not self.acoustic_scales or min(self.acoustic_scales) <= 0:
            raise ValueError(f"acoustic_scales must be a non-empty list of positive numbers, got {self.acoustic_scales}")
        if not self.blank_penalties or min(self.blank_penalties) < 0:
            raise ValueError(f"blank_penalties must be a non-empty list of numbers >= 0, got {self.blank_penalties}")
        if self.max_duration <= 0:
            raise ValueError(f"max_duration must be positive seconds, got {self.max_duration}")
