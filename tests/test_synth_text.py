"""Text of the synthetic corpus: numbers, normalisation, clause selection."""

from __future__ import annotations

import pytest

from asr_trainer.data.synth.numbers import number_to_words, ordinal_to_words, spell_numbers
from asr_trainer.data.synth.text import normalise, select_sentences, split_clauses


@pytest.mark.parametrize(
    "n, words",
    [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (100, "one hundred"),
     (144000, "one hundred forty four thousand"), (1611, "one thousand six hundred eleven")],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_ordinals_and_grouped_digits() -> None:
    assert ordinal_to_words(3) == "third"
    assert ordinal_to_words(20) == "twentieth"
    assert spell_numbers("the 21st day, 1,200 men") == "the twenty first day, one thousand two hundred men"


def test_normalise_spells_numbers_and_drops_punctuation() -> None:
    text = normalise("And the 12 sons of Jacob's wives; (twenty-two!) 'Amen.'")
    assert text == "AND THE TWELVE SONS OF JACOB'S WIVES TWENTY TWO AMEN"
    assert not any(ch.isdigit() for ch in text)


def test_split_clauses_cuts_at_punctuation() -> None:
    verse = "And God said, Let there be light: and there was light."
    assert split_clauses(verse) == ["And God said", "Let there be light", "and there was light"]


def test_select_sentences_bounds_pronunciations_and_duplicates() -> None:
    lexicon = {w: () for w in "AND THE LORD SPAKE UNTO MOSES SAYING GO IN PEACE".split()}
    clauses = [
        "And the Lord spake unto Moses, saying",  # 7 words: kept
        "Go in peace",  # 3 words: too short
        "and the LORD spake unto Moses saying",  # same after normalisation
        "And the Lord spake unto Zelophehad",  # no pronunciation
        "the Lord " * 5,  # 10 words, too long for max 8
    ]
    kept, skipped = select_sentences(clauses, lexicon, min_words=4, max_words=8)
    assert kept == ["AND THE LORD SPAKE UNTO MOSES SAYING"]
    assert skipped == {"too_short": 1, "duplicate": 1, "no_pronunciation": 1, "too_long": 1}
    assert all(4 <= len(s.split()) <= 8 for s in kept)


def test_missing_bible_names_the_package(monkeypatch, tmp_path) -> None:
    from asr_trainer.data.synth.text import read_kjv_verses
    from asr_trainer.errors import UserError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="apt-get install bible-kjv"):
        read_kjv_verses()
