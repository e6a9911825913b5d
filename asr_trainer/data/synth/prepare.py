"""``prepare_synth``: build the synthetic multi-speaker corpus as lhotse manifests.

Follows lhotse's recipe contract. Steps: check engines -> KJV sentences -> plan
(seeded) -> noise/RIR banks -> synthesise clean audio (parallel) -> degrade
(parallel) -> manifests, LM text, validation, summary log. A finished corpus
built from the same settings is detected (``synth_config.json``) and reused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

from lhotse import (
    AudioSource,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
    load_manifest,
    validate_recordings_and_supervisions,
)

from asr_trainer.data.synth import degrade, render
from asr_trainer.data.synth.audio import SAMPLE_RATE
from asr_trainer.data.synth.config import SPLITS, SynthConfig
from asr_trainer.data.synth.engines import check_engine, check_program
from asr_trainer.data.synth.plan import CorpusPlan, Utterance, make_plan
from asr_trainer.data.synth.text import kjv_sentences

log = logging.getLogger(__name__)
Manifests = dict[str, dict[str, RecordingSet | SupervisionSet]]
LM_TEXT = "synth_lm_text.txt"
CONFIG_STAMP = "synth_config.json"


def prepare_synth(output_dir: Path, config: SynthConfig, num_jobs: int = 2) -> Manifests:
    """Build (or reuse) the corpus under ``output_dir``.

    Returns ``{split: {"recordings": RecordingSet, "supervisions": SupervisionSet}}`` for
    train, dev and test, and writes ``synth_{recordings,supervisions}_<split>.jsonl.gz``,
    ``audio/<split>/*.<audio_format>`` (16 kHz mono) and ``synth_lm_text.txt``.
    """
    output_dir = Path(output_dir)
    if _is_done(output_dir, config):
        log.info("synth corpus already prepared in %s; reusing it", output_dir)
        return _load(output_dir)
    check_tools(config)
    from asr_trainer.lang.pronunciations import load_cmudict

    sentences, text_skips = kjv_sentences(load_cmudict(), config.min_words, config.max_words)
    plan = make_plan(config, sentences)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifests, skips = build_corpus(output_dir, config, plan, num_jobs)
    write_lm_text(output_dir / LM_TEXT, plan.lm_sentences)
    (output_dir / CONFIG_STAMP).write_text(json.dumps(dataclasses.asdict(config), indent=1))
    log_summary(manifests, text_skips, skips, len(plan.lm_sentences))
    return manifests


def check_tools(config: SynthConfig) -> None:
    """Raise a UserError naming the package when an engine of ``config`` (or sox) is missing."""
    check_program("sox")
    by_engine: dict[str, list[str]] = {}
    for split in SPLITS:
        for spec in config.voices(split):
            engine, _, base = spec.partition(":")
            by_engine.setdefault(engine, []).append(base)
    for engine, bases in by_engine.items():
        check_engine(engine, tuple(bases))


def build_corpus(
    output_dir: Path, config: SynthConfig, plan: CorpusPlan, num_jobs: int
) -> tuple[Manifests, Counter[str]]:
    """Render every split of ``plan``, write its manifests; return them and skip counts."""
    work = output_dir / "tmp_synth"
    banks = (
        degrade.load_noise_bank(degrade.make_noise_bank(work, config.noise_kinds)),
        degrade.make_rir_bank(config.num_rirs, config.seed, config.rt60_min, config.rt60_max),
    )
    manifests: Manifests = {}
    skips: Counter[str] = Counter()
    for split in SPLITS:
        manifests[split] = _build_split(output_dir, work, config, plan.utterances[split], banks, num_jobs, skips)
    shutil.rmtree(work, ignore_errors=True)
    return manifests, skips


def _build_split(
    output_dir: Path,
    work: Path,
    config: SynthConfig,
    utts: list[Utterance],
    banks: tuple[dict, list],
    num_jobs: int,
    skips: Counter[str],
) -> dict[str, RecordingSet | SupervisionSet]:
    """Synthesise, degrade, validate and write one split (all ``utts`` share a split)."""
    split = utts[0].split
    clean_dir = work / "clean" / split
    audio_dir = output_dir / "audio" / split
    clean_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    clean = list(render.parallel_map(
        render.synthesize_clean, [(u, clean_dir) for u in utts], num_jobs, f"synth {split}", banks
    ))
    ok = []
    for utt, res in zip(utts, clean):
        if res.skip:
            skips[res.skip] += 1
            log.warning("skipped %s (%s): %s", utt.id, res.skip, utt.text)
        else:
            ok.append(utt)
    tasks = [(u, clean_dir, audio_dir / f"{u.id}.{config.audio_format}") for u in ok]
    done = list(render.parallel_map(render.render_utterance, tasks, num_jobs, f"degrade {split}", banks))
    recordings = RecordingSet.from_recordings(_recording(r) for r in done)
    supervisions = SupervisionSet.from_segments(_supervision(u, r) for u, r in zip(ok, done))
    validate_recordings_and_supervisions(recordings, supervisions)
    recordings.to_file(output_dir / f"synth_recordings_{split}.jsonl.gz")
    supervisions.to_file(output_dir / f"synth_supervisions_{split}.jsonl.gz")
    return {"recordings": recordings, "supervisions": supervisions}


def _recording(r: render.Rendered) -> Recording:
    return Recording(
        id=r.id,
        sources=[AudioSource(type="file", channels=[0], source=str(r.path))],
        sampling_rate=SAMPLE_RATE,
        num_samples=r.num_samples,
        duration=r.num_samples / SAMPLE_RATE,
    )


def _supervision(u: Utterance, r: render.Rendered) -> SupervisionSegment:
    return SupervisionSegment(
        id=u.id,
        recording_id=u.id,
        start=0.0,
        duration=r.num_samples / SAMPLE_RATE,
        channel=0,
        text=u.text,
        language="English",
        speaker=u.voice.speaker_id,
        custom={
            "engine": u.voice.engine,
            "voice": u.voice.base,
            "pitch": u.voice.pitch,
            "rate": u.voice.rate,
            "speed": u.voice.speed,
            "snr_db": u.snr_db if r.noisy else None,
            "noise": u.noise if r.noisy else None,
            "reverb": u.rir is not None,
            "rir": u.rir,
        },
    )


def write_lm_text(path: Path, sentences: list[str]) -> None:
    """One normalised sentence per line."""
    path.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")


def log_summary(manifests: Manifests, text_skips: Counter[str], skips: Counter[str], lm_lines: int) -> None:
    """Log utterances and hours per split, and every skip reason with its count."""
    for split, m in manifests.items():
        hours = sum(r.duration for r in m["recordings"]) / 3600
        words = sum(len(s.text.split()) for s in m["supervisions"])
        log.info("synth %s: %d utterances, %.3f h, %d words", split, len(m["recordings"]), hours, words)
    log.info("synth LM text: %d sentences", lm_lines)
    log.info(
        "synth text skips: %s",
        ", ".join(f"{k}={v}" for k, v in sorted(text_skips.items())) or "none",
    )
    log.info("synth audio skips: %s", ", ".join(f"{k}={v}" for k, v in sorted(skips.items())) or "none")


def _is_done(output_dir: Path, config: SynthConfig) -> bool:
    stamp = output_dir / CONFIG_STAMP
    if not stamp.is_file() or not (output_dir / LM_TEXT).is_file():
        return False
    files = [output_dir / f"synth_{k}_{s}.jsonl.gz" for s in SPLITS for k in ("recordings", "supervisions")]
    return all(f.is_file() for f in files) and _stamp_matches(json.loads(stamp.read_text()), config)


def _stamp_matches(stamp: dict, config: SynthConfig) -> bool:
    """Whether a corpus stamped ``stamp`` is ``config``'s; settings added since it was built
    count as their defaults (which reproduce the corpus as it was built)."""
    defaults = {f.name: f.default for f in dataclasses.fields(SynthConfig)}
    current = json.loads(json.dumps(dataclasses.asdict(config)))
    stamped = {k: stamp.get(k, json.loads(json.dumps(defaults[k]))) for k in current}
    return set(stamp) <= set(current) and stamped == current


def _load(output_dir: Path) -> Manifests:
    return {
        split: {
            kind: load_manifest(output_dir / f"synth_{kind}_{split}.jsonl.gz")
            for kind in ("recordings", "supervisions")
        }
        for split in SPLITS
    }
