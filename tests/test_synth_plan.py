"""The corpus plan: seeded, voice-disjoint splits, sentence-disjoint dev/test."""

from __future__ import annotations

import dataclasses

import pytest

from asr_trainer.config import load_config
from asr_trainer.data.synth.config import SynthConfig
from asr_trainer.data.synth.plan import make_plan
from asr_trainer.data.synth.text import kjv_sentences
from asr_trainer.errors import UserError
from asr_trainer.lang.pronunciations import load_cmudict


@pytest.fixture(scope="module")
def config() -> SynthConfig:
    return load_config(SynthConfig, "conf/data/synth-quick.yaml")


@pytest.fixture(scope="module")
def sentences(config: SynthConfig) -> list[str]:
    kept, skipped = kjv_sentences(load_cmudict(), config.min_words, config.max_words)
    assert skipped["no_pronunciation"] > 0  # the KJV has words CMUdict lacks
    return kept


def test_every_profile_loads() -> None:
    quick = load_config(SynthConfig, "conf/data/synth-quick.yaml")
    default = load_config(SynthConfig, "conf/data/synth-default.yaml")
    study = load_config(SynthConfig, "conf/data/synth-study.yaml")
    assert default.train_minutes > 10 * quick.train_minutes
    assert default.min_test_words >= 4000
    assert study.train_minutes >= 600  # >= 10 h planned (the log reports the real hours)
    assert (study.dev_minutes, study.test_minutes, study.min_test_words) == (
        default.dev_minutes, default.test_minutes, default.min_test_words
    )
    assert set(default.train_voices) < set(study.train_voices)
    assert len(study.train_voices) >= 3 * len(default.train_voices)
    assert quick.train_speeds == default.train_speeds == (1.0,) and len(study.train_speeds) > 1


def base_voices(config: SynthConfig, split: str) -> set[str]:
    """``engine:language`` without the espeak-ng variant: the stricter reading of "base voice"."""
    return {v.partition("+")[0] for v in config.voices(split)}


def test_study_profile_splits_are_disjoint_by_base_voice(sentences) -> None:
    study = load_config(SynthConfig, "conf/data/synth-study.yaml")
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not set(study.voices(a)) & set(study.voices(b))
        assert not base_voices(study, a) & base_voices(study, b)
    plan = make_plan(dataclasses.replace(study, train_minutes=60.0), sentences)
    bases = {s: {u.voice.base_id for u in utts} for s, utts in plan.utterances.items()}
    assert not bases["train"] & (bases["dev"] | bases["test"]) and not bases["dev"] & bases["test"]
    assert {u.voice.engine for u in plan.utterances["test"]} - {u.voice.engine for u in plan.utterances["train"]}


def test_speed_perturbation_is_train_only_and_labelled(sentences) -> None:
    study = load_config(SynthConfig, "conf/data/synth-study.yaml")
    plan = make_plan(dataclasses.replace(study, train_minutes=60.0), sentences)
    train = plan.utterances["train"]
    assert {u.voice.speed for u in train} == set(study.train_speeds)
    assert all(u.voice.speed == 1.0 for s in ("dev", "test") for u in plan.utterances[s])
    for u in train:  # the speed is in the speaker id (and so the utterance id) unless it is 1.0
        assert u.voice.speaker_id.endswith(f"_s{round(100 * u.voice.speed)}") == (u.voice.speed != 1.0)
        assert u.id.startswith(u.voice.speaker_id + "-train-")
    assert make_plan(dataclasses.replace(study, train_minutes=60.0), sentences) == plan


def test_study_dev_and_test_are_the_default_profiles(sentences) -> None:
    """Same seed, sizes and dev/test voices, drawn before train: the same utterances and degradations."""
    study = load_config(SynthConfig, "conf/data/synth-study.yaml")
    default = load_config(SynthConfig, "conf/data/synth-default.yaml")
    a = make_plan(dataclasses.replace(study, train_minutes=30.0), sentences)
    b = make_plan(dataclasses.replace(default, train_minutes=30.0), sentences)
    assert a.utterances["dev"] == b.utterances["dev"] and a.utterances["test"] == b.utterances["test"]


def test_single_speed_keeps_the_plan(config, sentences) -> None:
    """train_speeds [1.0] (the default) draws exactly the plan drawn before speeds existed."""
    plan = make_plan(config, sentences)
    assert all(u.voice.speed == 1.0 and "_s" not in u.voice.speaker_id for u in plan.utterances["train"])
    spedup = make_plan(dataclasses.replace(config, train_speeds=(0.9, 1.1)), sentences)
    assert [u.text for u in spedup.utterances["test"]] == [u.text for u in plan.utterances["test"]]
    assert spedup.utterances["train"] != plan.utterances["train"]


@pytest.mark.parametrize("speeds", ["[]", "[0.3]", "[1.0,3.0]"])
def test_config_rejects_bad_speeds(speeds: str) -> None:
    with pytest.raises(UserError, match="train_speeds"):
        load_config(SynthConfig, None, [f"train_speeds={speeds}"])


def test_plan_is_deterministic_for_a_seed(config: SynthConfig, sentences: list[str]) -> None:
    a, b = make_plan(config, sentences), make_plan(config, sentences)
    assert a == b
    other = make_plan(dataclasses.replace(config, seed=config.seed + 1), sentences)
    assert [u.text for u in other.utterances["train"]] != [u.text for u in a.utterances["train"]]
    assert [u.voice for u in other.utterances["dev"]] != [u.voice for u in a.utterances["dev"]]


def test_splits_are_voice_disjoint_and_test_has_unseen_engine(config, sentences) -> None:
    plan = make_plan(config, sentences)
    bases = {s: {u.voice.base_id for u in utts} for s, utts in plan.utterances.items()}
    assert not bases["train"] & bases["dev"]
    assert not bases["train"] & bases["test"]
    assert not bases["dev"] & bases["test"]
    engines = {s: {u.voice.engine for u in utts} for s, utts in plan.utterances.items()}
    assert engines["test"] - engines["train"], "test must have an engine unseen in training"
    speakers = {u.voice.speaker_id for u in plan.utterances["train"]}
    assert len(speakers) > 10


def test_dev_test_sentences_not_in_train_or_lm_text(config, sentences) -> None:
    plan = make_plan(config, sentences)
    train = {u.text for u in plan.utterances["train"]}
    lm = set(plan.lm_sentences)
    assert train <= lm and len(lm) > len(train)
    for split in ("dev", "test"):
        texts = {u.text for u in plan.utterances[split]}
        assert texts and not texts & train and not texts & lm


def test_plan_sizes_and_degradations(config, sentences) -> None:
    plan = make_plan(config, sentences)
    utts = plan.utterances["train"]
    words = sum(len(u.text.split()) for u in utts)
    assert words * config.seconds_per_word >= 0.8 * 60 * config.train_minutes
    noisy = [u for u in utts if u.noise is not None]
    assert 0 < len(noisy) < len(utts)
    assert all(config.snr_db_min <= u.snr_db <= config.snr_db_max for u in noisy)
    assert any(u.rir is not None for u in utts)
    ids = {u.id for u in utts}
    assert all(set(u.babble) <= ids - {u.id} for u in utts)


def test_too_large_a_corpus_is_a_user_error(config) -> None:
    with pytest.raises(UserError, match="not enough KJV sentences"):
        make_plan(config, ["AND THE LORD SPAKE UNTO MOSES"] * 3)


def test_config_rejects_shared_voice() -> None:
    with pytest.raises(UserError, match="flite:slt"):
        load_config(SynthConfig, None, ["test_voices=[flite:slt]"])
