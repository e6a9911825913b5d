"""LibriSpeech or mini-LibriSpeech from a local directory, as lhotse manifests.

``corpus_dir`` holds the extracted parts (``train-clean-100/``, ``dev-clean/``, ...; a ``LibriSpeech/``
level in between is accepted). Parts map onto the recipe's splits train / dev / test:

* ``librispeech``: train = train-clean-100 (configurable), dev = dev-clean, test = test-clean.
* ``mini_librispeech``: train = train-clean-5; dev-clean-2 is split by speaker into dev and test
  halves, so the LM scale is never tuned on the test speakers.

We read the ``*.trans.txt`` files ourselves and share the Kaldi-table builder: lhotse's own recipe
stops on the first corrupt flac, whereas here bad audio is skipped, logged and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from asr_trainer.data.kaldi_dir import log_skips, tables_to_manifests
from asr_trainer.data.manifests import write_split
from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

PARTS = {
    "librispeech": {"train": ("train-clean-100",), "dev": ("dev-clean",), "test": ("test-clean",)},
    "mini_librispeech": {"train": ("train-clean-5",), "dev": ("dev-clean-2",), "test": ("dev-clean-2",)},
}


def find_part(corpus_dir: Path, part: str) -> Path:
    """The directory of one LibriSpeech part, with or without a ``LibriSpeech/`` level."""
    for candidate in (corpus_dir / part, corpus_dir / "LibriSpeech" / part):
        if candidate.is_dir():
            return candidate
    raise UserError(f"LibriSpeech part {part!r} not found under {corpus_dir}")


def read_part(part_dir: Path, skips: Counter) -> tuple[dict, dict, dict]:
    """Kaldi-style tables (wav_scp, text, utt2spk) of one part, from its ``*.trans.txt`` files."""
    wav_scp, texts, utt2spk = {}, {}, {}
    for trans in sorted(part_dir.glob("*/*/*.trans.txt")):
        for raw in trans.read_bytes().splitlines():
            try:
                utt_id, _, text = raw.decode("utf-8").strip().partition(" ")
            except UnicodeDecodeError:
                skips["transcript line not UTF-8"] += 1
                continue
            if not utt_id:
                continue
            wav_scp[utt_id] = str(trans.parent / f"{utt_id}.flac")
            texts[utt_id] = text
            utt2spk[utt_id] = utt_id.split("-")[0]
    if not texts:
        raise UserError(f"no *.trans.txt transcripts found under {part_dir}")
    return wav_scp, texts, utt2spk


def split_speakers(utt2spk: dict[str, str], half: int) -> set[str]:
    """Speakers of half ``half`` (0 or 1) of a part split by sorted speaker id."""
    speakers = sorted(set(utt2spk.values()))
    return set(speakers[half::2])


def prepare_librispeech(
    corpus_dir: Path, output_dir: Path, variant: str = "librispeech", train_parts: tuple[str, ...] = ()
) -> dict[str, dict]:
    """lhotse's recipe contract: ``{split: {"recordings", "supervisions"}}`` for train / dev / test."""
    if not corpus_dir.is_dir():
        raise UserError(f"corpus directory not found: {corpus_dir}")
    parts = dict(PARTS[variant])
    if train_parts:
        parts["train"] = tuple(train_parts)
    manifests = {}
    for split, names in parts.items():
        skips: Counter = Counter()
        wav_scp, texts, utt2spk = {}, {}, {}
        for name in names:
            for table, part in zip((wav_scp, texts, utt2spk), read_part(find_part(corpus_dir, name), skips)):
                table.update(part)
        if variant == "mini_librispeech" and split in ("dev", "test"):
            keep = split_speakers(utt2spk, 0 if split == "dev" else 1)
            texts = {u: t for u, t in texts.items() if utt2spk[u] in keep}
        recordings, supervisions = tables_to_manifests(wav_scp, texts, utt2spk, None, skips)
        log_skips(variant, split, skips)
        manifests[split] = write_split(recordings, supervisions, output_dir, variant, split)
    return manifests
