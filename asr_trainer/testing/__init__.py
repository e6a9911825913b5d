"""Workloads for tests and benchmarks only; the trainer never imports this package.

* :mod:`~asr_trainer.testing.toy`: a tiny deterministic regression workload for the strategies.
* :mod:`~asr_trainer.testing.tones`: a tiny learnable corpus of tones, with fbank features and a lang dir.
"""
