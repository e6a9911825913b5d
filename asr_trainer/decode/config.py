"""Decoding settings (``conf/decode.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from asr_trainer.decode.search import Axis
from asr_trainer.decode.tuning import search_axes


@dataclass(frozen=True)
class DecodeConfig:
    """Which model, which sets, and the HLG search settings.

    The model is the average of epochs ``epoch - avg + 1 .. epoch`` (``epoch=0``:
    the last saved epoch). The HLG acoustic scale and the blank penalty (nats off the
    blank log-prob; greedy too) are tuned on a fixed subset of ``dev_split`` only
    (``tune_fraction`` of its utterances, at least ``tune_min_utterances``, drawn with
    ``tune_seed``), by a local search from the grid point nearest ``(start_scale,
    start_blank_penalty)`` over the grids ``acoustic_scales`` x ``blank_penalties``,
    which extend past an edge the search reaches, within ``acoustic_scale_range`` and
    ``blank_penalty_range`` (:mod:`asr_trainer.decode.tuning`). Then dev and
    ``test_splits`` are decoded once each with the chosen setting, HLG in ``num_jobs``
    processes.
    """

    corpus: str = "synth"
    dev_split: str = "dev"
    test_splits: tuple[str, ...] = ("test",)
    epoch: int = 0
    avg: int = 2
    beam: float = 10.0
    max_active: int = 2000
    min_active: int = 200
    acoustic_scales: tuple[float, ...] = (0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
    blank_penalties: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    start_scale: float = 1.0
    start_blank_penalty: float = 2.0
    acoustic_scale_range: tuple[float, ...] = (0.1, 20.0)
    blank_penalty_range: tuple[float, ...] = (0.0, 10.0)
    tune_fraction: float = 0.25
    tune_min_utterances: int = 100
    tune_seed: int = 0
    num_jobs: int = 2
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
        for key in ("acoustic_scale_range", "blank_penalty_range"):
            low_high = getattr(self, key)
            if len(low_high) != 2 or low_high[0] > low_high[1]:
                raise ValueError(f"{key} must be [low, high] with low <= high, got {list(low_high)}")
        try:
            self.search_axes("hlg")
        except ValueError as e:
            raise ValueError(f"acoustic_scales / blank_penalties must lie within acoustic_scale_range / "
                             f"blank_penalty_range: {e}") from None
        if not 0 < self.tune_fraction <= 1 or self.tune_min_utterances < 0:
            raise ValueError(f"tune_fraction must be in (0, 1] and tune_min_utterances >= 0, got "
                             f"{self.tune_fraction} and {self.tune_min_utterances}")
        if self.num_jobs < 1:
            raise ValueError(f"num_jobs must be >= 1 (decoding processes), got {self.num_jobs}")
        if self.max_duration <= 0:
            raise ValueError(f"max_duration must be positive seconds, got {self.max_duration}")

    def search_axes(self, method: str) -> tuple[Axis, Axis]:
        """The tuning search's (scale, penalty) axes; greedy search ignores the scale, so it is fixed at 1."""
        scales = self.acoustic_scales if method == "hlg" else (1.0,)
        return search_axes(scales, self.blank_penalties, self.acoustic_scale_range, self.blank_penalty_range)
