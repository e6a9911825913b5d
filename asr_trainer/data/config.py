"""Data settings of training (the ``data:`` section of ``conf/train.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataConfig:
    """Where the cuts come from and how they are batched.

    ``max_duration`` is seconds of audio per batch *per worker*; ``max_cuts`` (0: no
    limit) caps its utterances: ``max_cuts=1`` makes one-utterance batches at any
    ``max_duration`` (lhotse also yields a cut longer than ``max_duration`` alone). ``drop_last``
    drops partial batches; either way lhotse gives every rank the same number
    of batches per epoch (see :func:`asr_trainer.data.sampler.make_train_sampler`).
    ``valid_max_duration``: seconds per validation batch (0: ``max_duration``), so validation
    need not shrink with a small per-worker training batch.
    """

    corpus: str = "synth"
    train_split: str = "train"
    valid_split: str = "dev"
    max_duration: float = 60.0
    max_cuts: int = 0
    valid_max_duration: float = 0.0
    num_buckets: int = 10
    shuffle: bool = True
    drop_last: bool = False
    num_workers: int = 0
    spec_augment: bool = True
    time_warp_factor: int = 0
    num_feature_masks: int = 2
    features_mask_size: int = 15
    num_frame_masks: int = 2
    frames_mask_size: int = 40
    max_train_cuts: int = 0

    def __post_init__(self) -> None:
        if self.max_duration <= 0:
            raise ValueError(f"data.max_duration must be positive seconds, got {self.max_duration}")
        if self.max_cuts < 0:
            raise ValueError(f"data.max_cuts must be >= 0 (0 = no limit), got {self.max_cuts}")
        if self.valid_max_duration < 0:
            raise ValueError(f"data.valid_max_duration must be >= 0 seconds (0 = max_duration), "
                             f"got {self.valid_max_duration}")
        if self.num_buckets < 1:
            raise ValueError(f"data.num_buckets must be >= 1, got {self.num_buckets}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.max_train_cuts < 0:
            raise ValueError(f"data.max_train_cuts must be >= 0 (0 = all), got {self.max_train_cuts}")

    def batch_audio(self, mean_cut: float) -> float:
        """Seconds of audio in one worker batch, for corpora whose cuts last ``mean_cut`` seconds on
        average: ``max_duration`` without ``max_cuts`` (the nominal fill of a duration-bounded batch),
        else ``min(max_duration, max_cuts * mean_cut)`` (exact for ``max_cuts=1``: one utterance)."""
        if self.max_cuts == 0:
            return self.max_duration
        return min(self.max_duration, self.max_cuts * mean_cut)
