"""The process-wide random-number generators as one saveable state.

Python ``random``, numpy's global generator, torch's CPU generator and, when
CUDA is present, every CUDA device's generator. SpecAugment draws from python's
``random``, dropout from torch.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

RngState = dict[str, Any]


def rng_state() -> RngState:
    """RNG states of python, numpy, torch (and CUDA when available)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: RngState) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    """Seed python ``random``, numpy and torch (and CUDA): what follows is reproducible from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seeded_state(seed: int) -> RngState:
    """The :func:`rng_state` that :func:`seed_all` ``(seed)`` gives; the process's generators are untouched."""
    saved = rng_state()
    seed_all(seed)
    state = rng_state()
    restore_rng(saved)
    return state
