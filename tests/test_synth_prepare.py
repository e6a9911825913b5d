"""A tiny prepare_synth run: lhotse-valid manifests, repeatable audio, counted skips."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from lhotse import validate_recordings_and_supervisions

from asr_trainer.data.synth import SynthConfig, prepare_synth, render
from asr_trainer.data.synth.engines import EmptyAudioError, SynthesisError
from asr_trainer.data.synth.prepare import _stamp_matches

TINY = SynthConfig(
    seed=7,
    train_minutes=0.12,
    dev_minutes=0.06,
    test_minutes=0.06,
    lm_extra_sentences=50,
    max_words=8,
    train_voices=("espeak-ng:en-us+m3", "flite:kal16", "pico:en-US"),
    dev_voices=("flite:slt",),
    test_voices=("piper:joe",),
    noise_prob=0.8,
    reverb_prob=0.5,
    num_rirs=2,
    train_speeds=(0.9, 1.0, 1.1),
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    return out, prepare_synth(out, TINY, num_jobs=2)


@pytest.mark.slow
def test_manifests_are_valid_and_written(built) -> None:
    out, manifests = built
    assert set(manifests) == {"train", "dev", "test"}
    for split, m in manifests.items():
        recs, sups = m["recordings"], m["supervisions"]
        assert len(recs) > 0 and len(recs) == len(sups)
        validate_recordings_and_supervisions(recs, sups)
        assert (out / f"synth_recordings_{split}.jsonl.gz").is_file()
        assert (out / f"synth_supervisions_{split}.jsonl.gz").is_file()
        for rec in recs:
            assert rec.sampling_rate == 16000 and rec.num_channels == 1
            assert Path(rec.sources[0].source).parent == out / "audio" / split
            assert rec.load_audio().shape == (1, rec.num_samples)
        for sup in sups:
            assert sup.language == "English" and sup.text == sup.text.upper()
            assert {"engine", "voice", "snr_db", "noise", "reverb"} <= set(sup.custom)
            assert (sup.custom["noise"] is None) == (sup.custom["snr_db"] is None)
    speeds = {s: {x.custom["speed"] for x in manifests[s]["supervisions"]} for s in manifests}
    assert speeds["train"] <= set(TINY.train_speeds) and speeds["dev"] == speeds["test"] == {1.0}
    for sup in manifests["train"]["supervisions"]:
        assert sup.speaker.endswith(f"_s{round(100 * sup.custom['speed'])}") == (sup.custom["speed"] != 1.0)
    engines = {s: {x.custom["engine"] for x in manifests[s]["supervisions"]} for s in manifests}
    assert engines["test"] == {"piper"} and "piper" not in engines["train"]
    assert not (out / "tmp_synth").exists()


@pytest.mark.slow
def test_lm_text_has_train_but_no_dev_test_sentence(built) -> None:
    out, manifests = built
    lm = set((out / "synth_lm_text.txt").read_text().splitlines())
    assert {s.text for s in manifests["train"]["supervisions"]} <= lm
    for split in ("dev", "test"):
        assert not {s.text for s in manifests[split]["supervisions"]} & lm


@pytest.mark.slow
def test_same_seed_same_corpus_and_reuse(built, tmp_path, caplog) -> None:
    out, manifests = built
    again = prepare_synth(tmp_path / "again", TINY, num_jobs=1)
    for split in ("train", "dev", "test"):
        a, b = manifests[split], again[split]
        assert [s.to_dict() | {"recording_id": 0} for s in a["supervisions"]] == [
            s.to_dict() | {"recording_id": 0} for s in b["supervisions"]
        ]
        for ra, rb in zip(a["recordings"], b["recordings"]):
            np.testing.assert_array_equal(ra.load_audio(), rb.load_audio())
    with caplog.at_level(logging.INFO):
        reused = prepare_synth(out, TINY)
    assert "reusing" in caplog.text
    assert len(reused["train"]["recordings"]) == len(manifests["train"]["recordings"])


@pytest.mark.slow
def test_failed_and_empty_synthesis_are_skipped_and_counted(tmp_path, monkeypatch, caplog) -> None:
    real = render.synthesize
    calls = {"n": 0}

    def flaky(voice, text):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SynthesisError("engine crashed")
        if calls["n"] == 3:
            raise EmptyAudioError("silence")
        return real(voice, text)

    monkeypatch.setattr(render, "synthesize", flaky)
    config = dataclasses.replace(TINY, test_voices=("flite:rms",))
    with caplog.at_level(logging.INFO):
        manifests = prepare_synth(tmp_path, config, num_jobs=1)
    assert "empty_audio=1" in caplog.text and "synthesis_failed=1" in caplog.text
    assert "no_pronunciation=" in caplog.text
    planned = calls["n"]
    built = sum(len(m["recordings"]) for m in manifests.values())
    assert built == planned - 2
    for m in manifests.values():
        validate_recordings_and_supervisions(m["recordings"], m["supervisions"])


def test_a_corpus_stamped_before_a_new_setting_is_reused_at_its_default() -> None:
    stamp = json.loads(json.dumps(dataclasses.asdict(SynthConfig())))  # as synth_config.json holds it
    del stamp["train_speeds"]  # a corpus built before speed perturbation existed
    assert _stamp_matches(stamp, SynthConfig())
    assert not _stamp_matches(stamp, SynthConfig(train_speeds=(0.9, 1.0, 1.1)))
    assert not _stamp_matches(stamp | {"seed": 99}, SynthConfig())
    assert not _stamp_matches(stamp | {"retired_setting": 1}, SynthConfig())
