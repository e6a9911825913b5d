"""The training-state schema: what each checkpoint file holds, typed and versioned.

A checkpoint of a run is one :class:`ModelFile` (``epoch-N.pt`` at an epoch end,
``checkpoint-<step>.pt`` mid-epoch; written by the lead process, read by
``asr-trainer decode`` and the report) plus one :class:`ProcessState` per process
(``strategy-<N>[-rank<r>].pt`` / ``strategy-step<S>[-rank<r>].pt``; what that process
needs to resume exactly). Every section of a :class:`ProcessState` is produced by the
component that owns it through its ``state_dict()`` and read back by its
``load_state_dict()``: the strategy (replicas, inside-group rule, BMUF, statistics),
the workers' data position and RNGs, the process RNGs, the trainer's progress.

Files carry ``schema`` (:data:`SCHEMA`) and ``kind``; a file from before this schema
(older than :data:`OLDEST` for its kind), or of another kind, is refused with a
:class:`UserError` naming what it lacks (:data:`CHANGES`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from asr_trainer.checkpoint.files import load_file, save_file
from asr_trainer.errors import UserError

SCHEMA = 3
CHANGES = {  # schema -> what it changed; a file older than OLDEST[kind] lacks these
    3: "data.sampler, the one sampler state of all the process's workers (schema 2 held one per worker)",
}
OLDEST = {"ModelFile": 2, "ProcessState": 3}  # the oldest schema each kind is read from (unchanged since)
T = TypeVar("T")


class SchemaError(UserError):
    """A readable checkpoint file of another schema version or kind."""


@dataclass(frozen=True)
class RunSettings:
    """What a resumed run must share with the run that wrote the checkpoint.

    ``model_config`` / ``sync_config``: the settings as ``dataclasses.asdict`` dicts;
    ``world_size``: logical workers; ``num_outputs``: model outputs (blank + tokens).
    """

    model_config: dict[str, Any]
    sync_config: dict[str, Any]
    world_size: int
    num_outputs: int

    def difference(self, other: "RunSettings") -> str | None:
        """One line naming the first setting where ``other`` (this command) differs from ``self`` (the run), or None."""
        if self.world_size != other.world_size:
            return (f"the run has {self.world_size} workers, this command {other.world_size}: "
                    "use the same number")
        for name, mine, theirs in (("model", self.model_config, other.model_config),
                                   ("sync", self.sync_config, other.sync_config)):
            mine, theirs = _flat(mine, name), _flat(theirs, name)
            keys = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
            if keys:
                k = keys[0]
                return f"{k} is {mine.get(k)!r} in the run, {theirs.get(k)!r} in this command"
        if self.num_outputs != other.num_outputs:
            return f"the run's model has {self.num_outputs} outputs, this lang dir gives {other.num_outputs}"
        return None


def _flat(settings: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"<prefix>.a.b": 1}``: nested settings as the dotted keys of an override."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}.{key}"))
        else:
            out[f"{prefix}.{key}"] = value
    return out


@dataclass
class ModelFile:
    """The model to decode: ``model`` (a ``state_dict``; the global model ``W_g`` under BMUF),
    ``model_config`` (``dataclasses.asdict`` of the model settings), ``num_outputs``, the
    ``epoch`` and global ``step`` it was saved after, and free-form ``meta`` (strategy, workers)."""

    model: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    num_outputs: int
    epoch: int
    step: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProcessState:
    """Everything one process needs to go on after global step ``step`` of ``epoch``.

    ``mid_epoch``: saved inside the epoch (the samplers resume their position), else at its end.
    ``strategy``: ``SyncStrategy.state_dict()``; ``data``: ``WorkerData.state_dict()``;
    ``rng``: :func:`asr_trainer.rng.rng_state` of the process; ``progress``: the trainer's
    counters (``RunProgress.state_dict()``); ``settings``: what a resume must not change.
    """

    epoch: int
    step: int
    mid_epoch: bool
    settings: RunSettings
    strategy: dict[str, Any]
    data: dict[str, Any]
    rng: dict[str, Any]
    progress: dict[str, Any]


def save(path: Path, obj: ModelFile | ProcessState) -> None:
    """Write ``obj`` atomically with its ``schema`` and ``kind``."""
    fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, ProcessState):
        fields["settings"] = dataclasses.asdict(obj.settings)
    save_file(Path(path), {"schema": SCHEMA, "kind": type(obj).__name__, **fields})


def load(path: Path, cls: type[T]) -> T:
    """Read a ``cls`` (:class:`ModelFile` or :class:`ProcessState`) written by :func:`save`.

    An unreadable file is a :class:`UserError`; a file of an older schema or of another kind
    a :class:`SchemaError` that names what is missing; nothing is guessed.
    """
    state = load_file(path)
    names = [f.name for f in dataclasses.fields(cls)]
    lacks = _lacks(state, cls.__name__, names)
    if lacks is not None:
        found = f"schema {state.get('schema')!r}, kind {state.get('kind')!r}"
        raise SchemaError(f"{path} is not a {cls.__name__} of checkpoint schema {SCHEMA} ({found}"
                          + (f"; it lacks {', '.join(lacks)}" if lacks else "")
                          + "): it was written by another version of asr_trainer; "
                            "use that version, or train into a new --exp-dir")
    values = {k: state[k] for k in names}
    if cls is ProcessState:
        values["settings"] = RunSettings(**values["settings"])
    return cls(**values)


def _lacks(state: dict[str, Any], kind: str, names: list[str]) -> list[str] | None:
    """None if ``state`` is a readable ``kind`` with fields ``names``; else what it lacks (maybe nothing
    nameable: another kind, a newer schema)."""
    missing = [k for k in ["schema", "kind", *names] if k not in state]
    if missing:
        return missing
    version = state["schema"]
    if state["kind"] != kind or not isinstance(version, int) or version > SCHEMA:
        return []
    if version < OLDEST[kind]:
        return [change for v, change in sorted(CHANGES.items()) if v > version]
    return None
