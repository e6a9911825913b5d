"""80-dimensional fbank features with lhotse, stored with lilcom, in parallel jobs.

Input: the manifests of one corpus, ``<manifest_dir>/<corpus>_{recordings,supervisions}_<split>.jsonl.gz``.
Output, per split: ``<out_dir>/<corpus>_cuts_<split>.jsonl.gz`` (one cut per supervision, features
attached) and the feature archives ``<out_dir>/<corpus>_feats_<split>/feats-<job>.lca``.

Cuts whose audio cannot be read (missing, truncated or corrupt file, zero length) are skipped, logged
with their id and counted; they never stop the stage. Cuts longer than ``max_duration`` seconds are
dropped before feature extraction (they would not fit the training memory budget).
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter, load_manifest

from asr_trainer.errors import UserError

log = logging.getLogger(__name__)

NUM_MEL_BINS = 80
SPEED_FACTORS = (0.9, 1.1)


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the feature stage."""

    num_mel_bins: int = NUM_MEL_BINS
    speed_perturb: bool = False  # add 0.9x and 1.1x copies of the training split
    max_duration: float = 30.0  # seconds; longer cuts are dropped and counted
    num_jobs: int = 2


@dataclass
class SkipLog:
    """Ids of cuts left out of a split, by reason."""

    reasons: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, cut_id: str) -> None:
        self.reasons[reason] += 1
        self.examples.setdefault(reason, []).append(cut_id)

    def merge(self, other: "SkipLog") -> None:
        for reason, ids in other.examples.items():
            for cut_id in ids:
                self.add(reason, cut_id)


def load_cuts(manifest_dir: Path, corpus: str, split: str) -> CutSet:
    """One cut per supervision, from the split's recording and supervision manifests."""
    paths = [manifest_dir / f"{corpus}_{kind}_{split}.jsonl.gz" for kind in ("recordings", "supervisions")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"manifest(s) not found: {', '.join(missing)} (run the data stage first)")
    recordings, supervisions = (load_manifest(p) for p in paths)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    return cuts.trim_to_supervisions(keep_overlapping=False)


def compute_fbank_split(
    cuts: CutSet, storage_dir: Path, cfg: FeatureConfig
) -> tuple[CutSet, SkipLog]:
    """Compute and store fbank for ``cuts`` in ``cfg.num_jobs`` processes.

    Returns the cuts that have features (order kept) and the log of skipped ones.
    """
    skips = SkipLog()
    kept = []
    for cut in cuts:
        if cut.duration <= 0:
            skips.add("zero-length", cut.id)
        elif cut.duration > cfg.max_duration:
            skips.add(f"longer than max_duration={cfg.max_duration}s", cut.id)
        else:
            kept.append(cut)
    storage_dir.mkdir(parents=True, exist_ok=True)
    num_jobs = max(1, min(cfg.num_jobs, len(kept)))
    chunks = [kept[i::num_jobs] for i in range(num_jobs)]
    jobs = [(chunk, storage_dir / f"feats-{i}", cfg.num_mel_bins) for i, chunk in enumerate(chunks)]
    if num_jobs == 1:
        results = [_extract_chunk(*jobs[0])]
    else:
        with ProcessPoolExecutor(num_jobs) as pool:
            results = list(pool.map(_extract_chunk, *zip(*jobs)))
    by_id = {}
    for done, chunk_skips in results:
        by_id.update((c.id, c) for c in done)
        skips.merge(chunk_skips)
    return CutSet.from_cuts(by_id[c.id] for c in kept if c.id in by_id), skips


def _extract_chunk(cuts: list, storage_path: Path, num_mel_bins: int) -> tuple[list, SkipLog]:
    """Worker process: features for one chunk of cuts, skipping unreadable audio.

    One torch thread per job: the jobs already fill the cores, and oversubscribed
    intra-op threads made extraction ~20x slower on a loaded 2-core machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _extract_with(Fbank(FbankConfig(num_mel_bins=num_mel_bins)), cuts, storage_path)
    finally:
        torch.set_num_threads(threads)


def _extract_with(extractor: Fbank, cuts: list, storage_path: Path) -> tuple[list, SkipLog]:
    skips = SkipLog()
    done = []
    with LilcomChunkyWriter(storage_path) as writer:
        for cut in cuts:
            try:
                done.append(cut.compute_and_store_features(extractor, writer))
            except Exception as e:  # noqa: BLE001 -- any decoder error means unreadable audio
                skips.add(f"unreadable audio ({type(e).__name__})", cut.id)
                log.warning("skipping cut %s: cannot read its audio: %s", cut.id, e)
    return done, skips


def compute_fbank(
    manifest_dir: Path, corpus: str, splits: list[str], out_dir: Path, cfg: FeatureConfig
) -> dict[str, CutSet]:
    """The feature stage: fbank for every split; idempotent per split.

    The training split (``"train"``) gets 0.9x/1.1x speed-perturbed copies when ``cfg.speed_perturb``.
    """
    out: dict[str, CutSet] = {}
    for split in splits:
        target = out_dir / f"{corpus}_cuts_{split}.jsonl.gz"
        if target.is_file():
            log.info("features of %s/%s already done: %s", corpus, split, target)
            out[split] = load_manifest(target)
            continue
        cuts = load_cuts(manifest_dir, corpus, split)
        if cfg.speed_perturb and split == "train":
            cuts = cuts + sum((cuts.perturb_speed(f) for f in SPEED_FACTORS), CutSet())
        storage = out_dir / f"{corpus}_feats_{split}"
        cuts, skips = compute_fbank_split(cuts, storage, cfg)
        _log_summary(corpus, split, cuts, skips)
        if len(cuts) == 0:
            raise UserError(f"no usable utterance in {corpus}/{split}: {dict(skips.reasons)}")
        cuts.to_file(target)
        out[split] = cuts
    return out


def _log_summary(corpus: str, split: str, cuts: CutSet, skips: SkipLog) -> None:
    hours = sum(c.duration for c in cuts) / 3600
    log.info("%s/%s: %d cuts with features, %.2f h", corpus, split, len(cuts), hours)
    for reason, count in sorted(skips.reasons.items()):
        log.warning("%s/%s: skipped %d cut(s): %s (e.g. %s)", corpus, split, count, reason,
                    ", ".join(skips.examples[reason][:3]))
