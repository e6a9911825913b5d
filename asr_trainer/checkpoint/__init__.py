"""Checkpoints: the typed training-state schema, atomic files, complete sets and where a run resumes.

* :mod:`~asr_trainer.checkpoint.files`: atomic writes, reading, numbered names, pruning, averaging.
* :mod:`~asr_trainer.checkpoint.schema`: :class:`ModelFile` (what decoding reads) and
  :class:`ProcessState` (what one process resumes from), versioned.
* :mod:`~asr_trainer.checkpoint.store`: a checkpoint as a set of files that is complete or
  not, ``latest.json``, and :func:`find_resume_point` (the fallback rules).

This package imports nothing else of asr_trainer but :mod:`asr_trainer.errors`.
"""

from asr_trainer.checkpoint.files import average_model_states, list_numbered, load_file, save_file
from asr_trainer.checkpoint.schema import SCHEMA, ModelFile, ProcessState, RunSettings, SchemaError, load, save
from asr_trainer.checkpoint.store import (
    EPOCH_RE,
    LATEST,
    STEP_RE,
    Place,
    Pointer,
    ResumePoint,
    find_resume_point,
    has_checkpoints,
    read_pointer,
    save_set,
)

__all__ = [
    "EPOCH_RE", "LATEST", "SCHEMA", "STEP_RE", "ModelFile", "Place", "Pointer", "ProcessState", "ResumePoint",
    "RunSettings", "SchemaError", "average_model_states", "find_resume_point", "has_checkpoints", "list_numbered",
    "load", "load_file", "read_pointer", "save", "save_file", "save_set",
]
