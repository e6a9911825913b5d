"""Any Kaldi data directory (wav.scp, text, utt2spk, optional segments) as lhotse manifests.

Expected layout of ``corpus_dir``: one Kaldi data directory per split, ``corpus_dir/{train,dev,test}/``.
``wav.scp`` entries may be file paths or Kaldi pipes (``cmd ... |``).

Bad entries are skipped, logged with their id and counted, never a crash: a recording whose audio is
missing or unreadable, a line that is not UTF-8, an utterance with an empty transcript or no recording.
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections import Counter
from pathlib import Path

import soundfile
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource

from asr_trainer.data.manifests import normalise_transcript, write_split
from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
REQUIRED_FILES = ("wav.scp", "text", "utt2spk")


def read_table(path: Path, skips: Counter) -> dict[str, str]:
    """Read a Kaldi table (``key rest-of-line``); undecodable or key-only lines are counted in ``skips``."""
    table: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            skips[f"{path.name}: line not UTF-8"] += 1
            log.warning("%s:%d is not UTF-8; skipped", path, lineno)
            continue
        if not line:
            continue
        key, _, value = line.partition(" ")
        table[key] = value.strip()
    return table


def load_recording(reco_id: str, spec: str) -> Recording:
    """A Recording from a ``wav.scp`` value: a file path or a Kaldi pipe ending in ``|``."""
    if not spec.endswith("|"):
        return Recording.from_file(spec, recording_id=reco_id)
    command = spec[:-1].strip()
    data = subprocess.run(command, shell=True, check=True, capture_output=True).stdout
    info = soundfile.info(io.BytesIO(data))
    return Recording(
        id=reco_id, sources=[AudioSource(type="command", channels=[0], source=command)],
        sampling_rate=info.samplerate, num_samples=info.frames, duration=info.frames / info.samplerate,
    )


def prepare_kaldi_split(data_dir: Path, skips: Counter) -> tuple[RecordingSet, SupervisionSet]:
    """Manifests of one Kaldi data directory; bad entries counted in ``skips``."""
    missing = [f for f in REQUIRED_FILES if not (data_dir / f).is_file()]
    if missing:
        raise UserError(f"Kaldi data dir {data_dir} lacks {', '.join(missing)}")
    segments_file = data_dir / "segments"
    return tables_to_manifests(
        wav_scp=read_table(data_dir / "wav.scp", skips),
        texts=read_table(data_dir / "text", skips),
        utt2spk=read_table(data_dir / "utt2spk", skips),
        segments=read_table(segments_file, skips) if segments_file.is_file() else None,
        skips=skips,
    )


def tables_to_manifests(
    wav_scp: dict[str, str],
    texts: dict[str, str],
    utt2spk: dict[str, str],
    segments: dict[str, str] | None,
    skips: Counter,
) -> tuple[RecordingSet, SupervisionSet]:
    """Kaldi-style tables (id -> value) into validated-ready manifests, skipping bad entries."""
    recordings = _load_recordings(wav_scp, skips)
    supervisions = _supervisions(texts, utt2spk, segments, recordings, skips)
    used = {s.recording_id for s in supervisions}
    return (
        RecordingSet.from_recordings(r for r in recordings.values() if r.id in used),
        SupervisionSet.from_segments(supervisions),
    )


def _load_recordings(wav_scp: dict[str, str], skips: Counter) -> dict[str, Recording]:
    recordings = {}
    for reco_id, spec in wav_scp.items():
        try:
            reco = load_recording(reco_id, spec)
        except Exception as e:  # noqa: BLE001 -- any audio backend error = unreadable
            skips["missing or unreadable audio"] += 1
            log.warning("skipping recording %s (%s): %s", reco_id, spec, e)
            continue
        if reco.num_samples == 0:
            skips["zero-length audio"] += 1
            log.warning("skipping recording %s: zero-length audio", reco_id)
            continue
        recordings[reco_id] = reco
    return recordings


def _supervisions(
    texts: dict[str, str],
    utt2spk: dict[str, str],
    segments: dict[str, str] | None,
    recordings: dict[str, Recording],
    skips: Counter,
) -> list[SupervisionSegment]:
    out = []
    for utt_id, raw_text in texts.items():
        text = normalise_transcript(raw_text)
        if not text:
            skips["empty transcript"] += 1
            log.warning("skipping utterance %s: empty transcript", utt_id)
            continue
        if segments is not None:
            if utt_id not in segments:
                skips["no segment"] += 1
                continue
            reco_id, start, end = segments[utt_id].split()[:3]
            start_s, end_s = float(start), float(end)
        else:
            reco_id, start_s, end_s = utt_id, 0.0, None
        reco = recordings.get(reco_id)
        if reco is None:
            skips["utterance whose recording was skipped or absent"] += 1
            continue
        end_s = reco.duration if end_s is None or end_s < 0 else min(end_s, reco.duration)
        if end_s <= start_s:
            skips["empty segment"] += 1
            continue
        out.append(SupervisionSegment(
            id=utt_id, recording_id=reco_id, start=start_s, duration=round(end_s - start_s, 6),
            channel=0, text=text, speaker=utt2spk.get(utt_id, utt_id), language="English",
        ))
    return out


def prepare_kaldi_dirs(corpus_dir: Path, output_dir: Path, corpus: str = "kaldi") -> dict[str, dict]:
    """lhotse's recipe contract for ``corpus_dir/{train,dev,test}`` Kaldi data dirs."""
    if not corpus_dir.is_dir():
        raise UserError(f"corpus directory not found: {corpus_dir}")
    absent = [s for s in SPLITS if not (corpus_dir / s).is_dir()]
    if absent:
        raise UserError(f"{corpus_dir} must hold Kaldi data dirs {', '.join(SPLITS)}; missing {', '.join(absent)}")
    manifests = {}
    for split in SPLITS:
        skips: Counter = Counter()
        recordings, supervisions = prepare_kaldi_split(corpus_dir / split, skips)
        log_skips(corpus, split, skips)
        manifests[split] = write_split(recordings, supervisions, output_dir, corpus, split)
    return manifests


def log_skips(corpus: str, split: str, skips: Counter) -> None:
    """One warning line per skip reason, with its count."""
    for reason, count in sorted(skips.items()):
        log.warning("%s/%s: skipped %d: %s", corpus, split, count, reason)
