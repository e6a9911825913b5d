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


def test_both_profiles_load() -> None:
    quick = load_config(SynthConfig, "conf/data/synth-quick.yaml")
    default = load_config(SynthConfig, "conf/data/synth-default.yaml")
    assert default.train_minutes > 10 * quick.train_minutes
    assert default.min_test_words >= 4000


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
