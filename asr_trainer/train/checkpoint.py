"""Checkpoints: save/load with RNG and sampler state, keep the last K, average the last few.

A checkpoint is a ``torch.save``d dict with keys ``replica`` (model,
optimizer, scheduler state), ``sampler`` (lhotse sampler state), ``rng``
(python/numpy/torch/cuda), ``epoch``, ``step``, ``model_config``,
``num_outputs`` and ``meta`` (free-form).

Crash safety: every file is written to a temporary file in the same directory,
fsynced, then ``os.replace``d over its name (and the directory fsynced), so a
process killed mid-write leaves the previous file intact. A checkpoint may span
several files (a synchronised run: one strategy file per rank plus the model);
it counts only once :func:`mark_complete` has (atomically) pointed ``latest.json``
at it, which the trainer does after every rank has written its part. Resuming
(:func:`latest_complete`, :func:`load_latest`) starts from that pointer.
"""

from __future__ import annotations

import json
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


def seed_all(seed: int) -> None:
    """Seed python ``random``, numpy and torch (and CUDA): a run is then reproducible from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


LATEST = "latest.json"
TMP_SUFFIX = ".tmp"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (same-directory tmp file, fsync, rename) so a crash never leaves half a file."""
    _write_atomic(Path(path), lambda f: torch.save(state, f))


def _write_atomic(path: Path, write) -> None:
    """``write(binary file)`` into ``<path>.<pid>.tmp``, fsync it, rename it over ``path``, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def mark_complete(exp_dir: Path, files: Sequence[str], epoch: int, step: int, mid_epoch: bool) -> None:
    """Point ``latest.json`` (atomically) at a fully written checkpoint: its ``files`` (names in ``exp_dir``)."""
    entry = {"files": list(files), "epoch": epoch, "step": step, "mid_epoch": mid_epoch}
    _write_atomic(Path(exp_dir) / LATEST, lambda f: f.write((json.dumps(entry, indent=2) + "\n").encode()))


def latest_complete(exp_dir: Path) -> dict[str, Any] | None:
    """The entry of :func:`mark_complete` when all its files exist, else None (also for a corrupt pointer)."""
    path = Path(exp_dir) / LATEST
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
        files = [Path(exp_dir) / name for name in entry["files"]]
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable %s", path)
        return None
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        log.warning("%s names missing files %s; ignoring it", path, missing)
        return None
    return entry


def load_latest(exp_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete, readable single-file checkpoint of ``exp_dir`` and its state, or None.

    ``latest.json``'s first file when it can be read; otherwise (older runs, a
    damaged file) the newest readable ``epoch-N.pt`` / ``checkpoint-<step>.pt``.
    """
    entry = latest_complete(exp_dir)
    candidates = [Path(exp_dir) / entry["files"][0]] if entry else []
    candidates += sorted(list_checkpoints(exp_dir, EPOCH_RE) + list_checkpoints(exp_dir, STEP_RE),
                         key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except UserError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
    return None


def remove_partial_files(exp_dir: Path) -> list[Path]:
    """Delete temporary files left by writers that were killed mid-write; return them."""
    leftovers = list(Path(exp_dir).glob(f"*{TMP_SUFFIX}"))
    for p in leftovers:
        p.unlink(missing_ok=True)
    return leftovers


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
    """The most recent checkpoint (epoch or step): ``latest.json``'s, else the newest by modification time."""
    entry = latest_complete(exp_dir)
    if entry is not None:
        return Path(exp_dir) / entry["files"][0]
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
