"""Checkpoints: save/load with RNG and sampler state, keep the last K, average the last few.

A checkpoint is a ``torch.save``d dict with keys ``replica`` (model,
optimizer, scheduler state), ``sampler`` (lhotse sampler state), ``rng``
(python/numpy/torch/cuda), ``epoch``, ``step``, ``model_config``,
``num_outputs`` and ``meta`` (free-form).
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")
STEP_RE = re.compile(r"^checkpoint-(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (and CUDA when available)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (tmp file + rename) so a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a checkpoint on CPU; a missing or unreadable file is a :class:`UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a corrupt file
        raise UserError(f"cannot read checkpoint {p}: {e}") from None


def list_checkpoints(exp_dir: Path, pattern: re.Pattern = EPOCH_RE) -> list[Path]:
    """Checkpoints in ``exp_dir`` matching ``pattern``, sorted by their number."""
    found = [(int(m.group(1)), p) for p in Path(exp_dir).glob("*.pt") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(exp_dir: Path, keep_last: int, pattern: re.Pattern) -> list[Path]:
    """Delete all but the last ``keep_last`` checkpoints of ``pattern``; return those deleted."""
    doomed = list_checkpoints(exp_dir, pattern)[:-keep_last]
    for p in doomed:
        p.unlink()
    return doomed


def latest_checkpoint(exp_dir: Path) -> Path | None:
    """The most recent checkpoint (epoch or step) by modification time, or None."""
    paths = list_checkpoints(exp_dir, EPOCH_RE) + list_checkpoints(exp_dir, STEP_RE)
    return max(paths, key=lambda p: p.stat().st_mtime_ns) if paths else None


def average_model_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of model ``state_dict``s; integer tensors (BatchNorm counters) come from the last."""
    if not states:
        raise UserError("no checkpoints to average")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = sum(s[key].double() for s in states).div(len(states)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def average_checkpoints(paths: Sequence[Path]) -> dict[str, torch.Tensor]:
    """Mean model state of the checkpoints at ``paths``."""
    log.info("averaging %s", ", ".join(p.name for p in paths))
    return average_model_states([load_checkpoint(p)["replica"]["model"] for p in paths])
