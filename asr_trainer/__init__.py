"""asr_trainer: a Kaldi-style CTC acoustic-model trainer for distributed training."""

__version__ = "0.1.0"
