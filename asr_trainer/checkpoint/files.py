"""Checkpoint files on disk: atomic writes, reading, numbered names, pruning, averaging.

Crash safety: every file is written to a temporary file in the same directory,
fsynced, then ``os.replace``d over its name (and the directory fsynced), so a
process killed mid-write leaves the previous file intact and at most a
``*.<pid>.tmp`` file behind (:func:`remove_partial_files`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

import torch

from asr_trainer.errors import UserError

TMP_SUFFIX = ".tmp"


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(binary file)`` into ``<path>.<pid>.tmp``, fsync it, rename it over ``path``, fsync the directory."""
    path = Path(path)
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


def save_file(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically."""
    write_atomic(Path(path), lambda f: torch.save(state, f))


def load_file(path: Path | str) -> dict[str, Any]:
    """A ``torch.save``d dict, on CPU; a missing or unreadable file is a :class:`UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a corrupt file
        raise UserError(f"cannot read checkpoint {p}: {e}") from None
    if not isinstance(state, dict):
        raise UserError(f"cannot read checkpoint {p}: it holds a {type(state).__name__}, not a dict")
    return state


def remove_partial_files(exp_dir: Path) -> list[Path]:
    """Delete temporary files left by writers that were killed mid-write; return them."""
    leftovers = list(Path(exp_dir).glob(f"*{TMP_SUFFIX}"))
    for p in leftovers:
        p.unlink(missing_ok=True)
    return leftovers


def list_numbered(directory: Path, pattern: re.Pattern) -> list[Path]:
    """Files in ``directory`` whose name matches ``pattern`` (group 1: a number), sorted by that number."""
    found = [(int(m.group(1)), p) for p in Path(directory).iterdir() if (m := pattern.match(p.name))] \
        if Path(directory).is_dir() else []
    return [p for _, p in sorted(found)]


def prune(directory: Path, keep_last: int, pattern: re.Pattern) -> list[Path]:
    """Delete all but the last ``keep_last`` files of :func:`list_numbered`; return those deleted."""
    doomed = list_numbered(directory, pattern)[:-keep_last]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


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
