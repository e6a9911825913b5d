"""Helpers shared by the corpus preparers: transcript normalisation and manifest writing.

Every corpus writes lhotse manifests named ``<corpus>_{recordings,supervisions}_<split>.jsonl.gz``
and an LM training text ``<corpus>_lm_text.txt`` into the same output directory.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lhotse import RecordingSet, SupervisionSet, validate_recordings_and_supervisions

from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

_NON_WORD = re.compile(r"[^A-Z0-9' ]+")


def normalise_transcript(text: str) -> str:
    """Upper case, punctuation (except apostrophes) removed, single spaces."""
    return " ".join(_NON_WORD.sub(" ", text.upper()).split())


def manifest_path(output_dir: Path, corpus: str, kind: str, split: str) -> Path:
    """``output_dir/<corpus>_<kind>_<split>.jsonl.gz`` for kind in recordings / supervisions / cuts."""
    return output_dir / f"{corpus}_{kind}_{split}.jsonl.gz"


def lm_text_path(output_dir: Path, corpus: str) -> Path:
    """Where the corpus' LM training text (one sentence per line) lives."""
    return output_dir / f"{corpus}_lm_text.txt"


def write_split(
    recordings: RecordingSet, supervisions: SupervisionSet, output_dir: Path, corpus: str, split: str
) -> dict:
    """Validate and write one split's manifests; returns ``{"recordings", "supervisions"}``.

    A split left without a single usable utterance is a :class:`UserError` (nothing is written).
    """
    if len(recordings) == 0 or len(supervisions) == 0:
        raise UserError(f"{corpus}/{split}: no usable utterance left (every entry was skipped, see the warnings "
                        "above): check the corpus")
    validate_recordings_and_supervisions(recordings, supervisions)
    output_dir.mkdir(parents=True, exist_ok=True)
    recordings.to_file(manifest_path(output_dir, corpus, "recordings", split))
    supervisions.to_file(manifest_path(output_dir, corpus, "supervisions", split))
    hours = sum(s.duration for s in supervisions) / 3600
    log.info("%s/%s: %d utterances, %.2f h", corpus, split, len(supervisions), hours)
    return {"recordings": recordings, "supervisions": supervisions}


def write_lm_text(supervisions: SupervisionSet, output_dir: Path, corpus: str) -> Path:
    """The LM text of a user corpus: its training transcripts, one per line."""
    path = lm_text_path(output_dir, corpus)
    path.write_text("".join(f"{s.text}\n" for s in supervisions if s.text), encoding="utf-8")
    return path
