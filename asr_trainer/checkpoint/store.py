"""A run's checkpoints as sets that are complete or not: names, saving, the pointer, resume.

A checkpoint after global step ``S`` is a set of files: this process's
:class:`~asr_trainer.checkpoint.schema.ProcessState` (one per process, see
:func:`state_name`) and the lead's :class:`~asr_trainer.checkpoint.schema.ModelFile`
(:func:`model_name`). :func:`save_set` writes them so that the set counts only once
all are on disk: every process writes its part, all meet (barrier), the lead writes
the model file and then points ``latest.json`` at the set (atomically), all meet
again, and only then are old sets pruned.

:func:`find_resume_point` is the one place that decides where a run goes on from,
the same decision on every process (collectives): the set ``latest.json`` names
when every process has its files; the processes seeing different sets is an error;
when the pointer is damaged or a file it names is missing or unreadable somewhere,
the newest set that is complete on every process; when nothing is complete but
checkpoints exist, an error (a run never starts from scratch over earlier work).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch

from asr_trainer.checkpoint import schema
from asr_trainer.checkpoint.files import list_numbered, prune, remove_partial_files, write_atomic
from asr_trainer.checkpoint.schema import ModelFile, ProcessState, SchemaError
from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

LATEST = "latest.json"
EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")
STEP_RE = re.compile(r"^checkpoint-(\d+)\.pt$")
NO_KEY = -1.0


class Collectives(Protocol):
    """What :func:`save_set` and :func:`find_resume_point` need of a communicator (over all processes)."""

    def barrier(self) -> None: ...

    def all_reduce_min(self, values: torch.Tensor) -> torch.Tensor: ...

    def all_reduce_max(self, values: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Place:
    """This process in a run: ``rank`` in file names (None: one process holds every worker),
    ``ranks`` (every process's file rank), ``lead`` (it writes the model file and the pointer)."""

    rank: int | None
    ranks: tuple[int | None, ...]
    lead: bool


def model_name(epoch: int, step: int, mid_epoch: bool) -> str:
    """``checkpoint-<step>.pt`` (mid-epoch) or ``epoch-<epoch>.pt``."""
    return f"checkpoint-{step}.pt" if mid_epoch else f"epoch-{epoch}.pt"


def state_name(epoch: int, step: int, mid_epoch: bool, rank: int | None) -> str:
    """``strategy-<epoch>`` / ``strategy-step<step>``, then ``-rank<rank>`` for one process of several, ``.pt``."""
    tag = f"step{step}" if mid_epoch else str(epoch)
    return f"strategy-{tag}.pt" if rank is None else f"strategy-{tag}-rank{rank}.pt"


def state_pattern(rank: int | None, mid_epoch: bool) -> re.Pattern:
    """The names of :func:`state_name` of ``rank`` of one kind (group 1: the epoch or step)."""
    tag = r"step(\d+)" if mid_epoch else r"(\d+)"
    return re.compile(rf"^strategy-{tag}\.pt$" if rank is None else rf"^strategy-{tag}-rank{rank}\.pt$")


@dataclass(frozen=True)
class Pointer:
    """``latest.json``: the newest complete set, its ``files`` (names in the exp dir)."""

    epoch: int
    step: int
    mid_epoch: bool
    files: tuple[str, ...]

    @property
    def key(self) -> float:
        """Order of sets in training time: ``2 step``, plus 1 at an epoch end (after a mid-epoch set of its step)."""
        return 2.0 * self.step + (0.0 if self.mid_epoch else 1.0)


def read_pointer(exp_dir: Path) -> Pointer | None:
    """``latest.json`` of ``exp_dir``; None when absent or unreadable (logged)."""
    path = Path(exp_dir) / LATEST
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
        return Pointer(int(entry["epoch"]), int(entry["step"]), bool(entry["mid_epoch"]), tuple(entry["files"]))
    except (ValueError, KeyError, TypeError) as e:
        log.warning("%s is damaged (%s)", path, e)
        return None


def write_pointer(exp_dir: Path, pointer: Pointer) -> None:
    """Point ``latest.json`` at ``pointer``'s set, atomically."""
    text = json.dumps({**asdict(pointer), "files": list(pointer.files)}, indent=2) + "\n"
    write_atomic(Path(exp_dir) / LATEST, lambda f: f.write(text.encode()))


def has_checkpoints(exp_dir: Path) -> bool:
    """True when ``exp_dir`` holds a pointer or a model file: a set was complete there once."""
    d = Path(exp_dir)
    return (d / LATEST).is_file() or bool(list_numbered(d, EPOCH_RE) or list_numbered(d, STEP_RE))


def save_set(exp_dir: Path, comm: Collectives, place: Place, state: ProcessState, model: ModelFile | None,
             keep_last: int) -> None:
    """Write this process's ``state`` and (lead: ``model``) as one complete set (module doc); collective.

    Then prune: the last ``keep_last`` sets of each kind (epoch end, mid-epoch) are kept.
    """
    exp_dir = Path(exp_dir)
    epoch, step, mid = state.epoch, state.step, state.mid_epoch
    schema.save(exp_dir / state_name(epoch, step, mid, place.rank), state)
    comm.barrier()  # every process's part is on disk
    if place.lead:
        name = model_name(epoch, step, mid)
        schema.save(exp_dir / name, model)
        files = (name,) + tuple(state_name(epoch, step, mid, r) for r in place.ranks)
        write_pointer(exp_dir, Pointer(epoch, step, mid, files))
        prune(exp_dir, keep_last, STEP_RE if mid else EPOCH_RE)
    comm.barrier()  # latest.json names the new set
    prune(exp_dir, keep_last, state_pattern(place.rank, mid))


@dataclass(frozen=True)
class ResumePoint:
    """Where a run goes on from: the set's ``pointer`` and this process's ``state`` in it."""

    pointer: Pointer
    state: ProcessState
    fallback: bool  # not what latest.json named


def find_resume_point(exp_dir: Path, comm: Collectives, place: Place) -> ResumePoint | None:
    """The set to resume from (see the module doc), the same on every process; None: nothing to resume.

    Raises :class:`UserError` on every process alike when the processes see different
    pointers, when a file is of another checkpoint schema (an older version's run), or when
    checkpoints exist but no set is complete on every process.
    """
    exp_dir = Path(exp_dir)
    if place.lead:
        remove_partial_files(exp_dir)
    comm.barrier()
    pointer = read_pointer(exp_dir)
    mine, error = _load_pointed(exp_dir, pointer, place) if pointer is not None else (None, None)
    if _anywhere(comm, error is not None):
        raise UserError(error or "another process found a checkpoint of another asr_trainer version (see its error)")
    keys = torch.tensor([pointer.key if mine is not None else NO_KEY], dtype=torch.float64)
    lo, hi = float(comm.all_reduce_min(keys)[0]), float(comm.all_reduce_max(keys)[0])
    if lo != NO_KEY:
        if lo != hi:
            raise UserError(f"the processes see different latest checkpoints in {exp_dir} (global steps "
                            f"{int(lo) // 2} to {int(hi) // 2}): is the exp dir shared by all nodes, and of one run?")
        return ResumePoint(pointer, mine, fallback=False)
    found = _newest_complete(exp_dir, comm, place)
    if found is None and _anywhere(comm, has_checkpoints(exp_dir)):
        raise UserError(f"{exp_dir} holds checkpoints, but none is complete on every process (latest.json damaged "
                        "or files missing); nothing was changed: restore the files, or train into a new --exp-dir")
    if found is not None:
        log.warning("latest.json of %s is damaged or names files missing here or elsewhere: going on from %s, "
                    "the newest checkpoint complete on every process", exp_dir, found.pointer.files[0])
    return found


def _anywhere(comm: Collectives, flag: bool) -> bool:
    """True on every process when ``flag`` is True on at least one."""
    return float(comm.all_reduce_max(torch.tensor([float(flag)], dtype=torch.float64))[0]) > 0.0


def _load_pointed(exp_dir: Path, pointer: Pointer, place: Place) -> tuple[ProcessState | None, str | None]:
    """This process's state of the pointer's set when its files here are all there and readable,
    and the message of a file of another schema (then no state)."""
    model = exp_dir / model_name(pointer.epoch, pointer.step, pointer.mid_epoch)
    name = state_name(pointer.epoch, pointer.step, pointer.mid_epoch, place.rank)
    try:
        if place.lead:
            schema.load(model, ModelFile)
        if name not in pointer.files:
            log.warning("%s does not name %s", LATEST, name)
            return None, None
        return schema.load(exp_dir / name, ProcessState), None
    except SchemaError as e:
        return None, str(e)
    except UserError as e:
        log.warning("%s names a file missing or unreadable here: %s", LATEST, e)
        return None, None


def _try_load(path: Path) -> ProcessState | None:
    """The state at ``path``, or None (logged) when unreadable or of another schema."""
    try:
        return schema.load(path, ProcessState)
    except UserError as e:
        log.warning("skipping checkpoint file: %s", e)
        return None


def _local_sets(exp_dir: Path, place: Place) -> dict[float, ResumePoint]:
    """Sets whose files of this process are there and readable, by :attr:`Pointer.key`."""
    found = {}
    for mid in (False, True):
        for path in list_numbered(exp_dir, state_pattern(place.rank, mid)):
            state = _try_load(path)
            if state is None:
                continue
            files = (model_name(state.epoch, state.step, state.mid_epoch),) + tuple(
                state_name(state.epoch, state.step, state.mid_epoch, r) for r in place.ranks)
            if place.lead and not (exp_dir / files[0]).is_file():
                continue
            pointer = Pointer(state.epoch, state.step, state.mid_epoch, files)
            found[pointer.key] = ResumePoint(pointer, state, fallback=True)
    return found


def _newest_complete(exp_dir: Path, comm: Collectives, place: Place) -> ResumePoint | None:
    """The newest set complete on every process: propose, take the minimum, check all have it, else go lower."""
    local = _local_sets(exp_dir, place)
    bound = float("inf")
    while True:
        best = max((k for k in local if k <= bound), default=NO_KEY)
        agreed = float(comm.all_reduce_min(torch.tensor([best], dtype=torch.float64))[0])
        if agreed == NO_KEY:
            return None
        have = torch.tensor([float(agreed in local)], dtype=torch.float64)
        if float(comm.all_reduce_min(have)[0]) == 1.0:
            return local[agreed]
        bound = agreed - 1.0
