"""Training transcripts from a lhotse manifest (supervisions or cuts)."""

from __future__ import annotations

from pathlib import Path

from asr_trainer.errors import UserError


def read_transcripts(manifest: Path) -> list[str]:
    """The ``text`` of every supervision in a SupervisionSet or CutSet manifest
    (``*.jsonl.gz``); supervisions without text are skipped."""
    from lhotse import CutSet, SupervisionSet, load_manifest_lazy

    manifest = Path(manifest)
    if not manifest.is_file():
        raise UserError(f"transcript manifest {manifest} does not exist")
    try:
        items = load_manifest_lazy(manifest)
    except Exception as e:  # lhotse raises assorted errors on foreign files
        raise UserError(f"cannot read {manifest} as a lhotse manifest: {e}") from e
    if isinstance(items, SupervisionSet):
        sups = iter(items)
    elif isinstance(items, CutSet):
        sups = (s for cut in items for s in cut.supervisions)
    else:
        raise UserError(f"{manifest} holds {type(items).__name__}, not supervisions or cuts")
    texts = [s.text for s in sups if s.text]
    if not texts:
        raise UserError(f"{manifest} has no transcripts")
    return texts
