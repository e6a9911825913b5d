"""Sentences of the corpus: King James Bible clauses, normalised and filtered.

The text comes from Debian's ``bible-kjv`` package: ``bible -f Gen1:1-Rev22:21``
prints the whole Bible, one verse per line after its reference. Verses are cut
into clauses at punctuation (``. , ; : ? ! ( )``), normalised (numbers spelled out,
upper case, no punctuation; apostrophes kept inside words: ``LORD'S``) and kept
when they have ``min_words..max_words`` words that all have a pronunciation.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from typing import Iterable, Mapping

from asr_trainer.data.synth.numbers import spell_numbers
from asr_trainer.errors import UserError

WHOLE_BIBLE = "Gen1:1-Rev22:21"
_CLAUSE_BREAK = re.compile(r"[.,;:?!()]+")
_NOT_WORD = re.compile(r"[^A-Z' ]+")
_SPACES = re.compile(r"\s+")


def read_kjv_verses() -> list[str]:
    """All 31,102 KJV verses (text only, references removed), in Bible order."""
    try:
        proc = subprocess.run(
            ["bible", "-f", WHOLE_BIBLE], capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError:
        raise UserError("bible not found: apt-get install bible-kjv") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UserError(f"bible failed ({proc.stderr.strip()[:200]}): apt-get install bible-kjv")
    verses = []
    for line in proc.stdout.splitlines():
        ref, _, text = line.partition(" ")
        if text.strip():
            verses.append(text.strip())
    return verses


def split_clauses(verse: str) -> list[str]:
    """Cut a verse at punctuation: ``"And God said, Let there be light"`` -> two clauses."""
    return [c.strip() for c in _CLAUSE_BREAK.split(verse) if c.strip()]


def normalise(text: str) -> str:
    """Upper-case words, numbers spelled out, no punctuation (``-`` becomes a space).

    Example: ``normalise("The 12 sons of Jacob's wives; twenty-two!") ==
    "THE TWELVE SONS OF JACOB'S WIVES TWENTY TWO"``.
    """
    text = spell_numbers(text).upper().replace("-", " ")
    text = _NOT_WORD.sub(" ", text)
    words = [w.strip("'") for w in _SPACES.split(text)]
    return " ".join(w for w in words if w)


def select_sentences(
    clauses: Iterable[str], lexicon: Mapping[str, object], min_words: int, max_words: int
) -> tuple[list[str], Counter[str]]:
    """Normalise ``clauses`` and keep the distinct ones of the right length with known words.

    Returns the kept sentences (first-seen order) and counts of skip reasons:
    ``too_short``, ``too_long``, ``no_pronunciation``, ``duplicate``.
    """
    kept: list[str] = []
    seen: set[str] = set()
    skipped: Counter[str] = Counter()
    for clause in clauses:
        sentence = normalise(clause)
        words = sentence.split()
        if len(words) < min_words:
            skipped["too_short"] += 1
        elif len(words) > max_words:
            skipped["too_long"] += 1
        elif any(w not in lexicon for w in words):
            skipped["no_pronunciation"] += 1
        elif sentence in seen:
            skipped["duplicate"] += 1
        else:
            seen.add(sentence)
            kept.append(sentence)
    return kept, skipped


def kjv_sentences(
    lexicon: Mapping[str, object], min_words: int, max_words: int
) -> tuple[list[str], Counter[str]]:
    """:func:`select_sentences` over every clause of the KJV."""
    clauses = (c for verse in read_kjv_verses() for c in split_clauses(verse))
    return select_sentences(clauses, lexicon, min_words, max_words)
