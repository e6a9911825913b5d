"""Pronunciation lexicons and their disambiguation symbols.

A lexicon is a list of ``(word, units)`` entries; a word may have several
entries (``READ R IY D`` and ``READ R EH D`` are both kept).  ``units`` are
phones or BPE pieces; ``<UNK>`` maps to a dedicated unit (the spoken-noise
phone ``SPN`` or sentencepiece's ``<unk>`` piece).

Silence is not modelled: with CTC, pauses between words are absorbed by the
blank, so the lexicon has no optional silence and L has no silence arcs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from asr_trainer.errors import UserError
from asr_trainer.lang.symbols import UNK_WORD

Entry = tuple[str, tuple[str, ...]]
SPOKEN_NOISE = "SPN"


def phone_inventory(cmudict: Mapping[str, Sequence[Sequence[str]]]) -> list[str]:
    """All phones used by ``cmudict`` (stress removed), sorted; 39 for CMUdict."""
    return sorted({p for prons in cmudict.values() for pron in prons for p in pron})


def phone_lexicon(
    words: Iterable[str], cmudict: Mapping[str, Sequence[Sequence[str]]]
) -> tuple[list[Entry], list[str]]:
    """Entries for every word found in ``cmudict`` (all pronunciations), plus
    ``<UNK> SPN``.  Returns ``(entries, words_without_pronunciation)``."""
    entries: list[Entry] = [(UNK_WORD, (SPOKEN_NOISE,))]
    missing = []
    for word in sorted(set(words) - {UNK_WORD}):
        prons = cmudict.get(word)
        if not prons:
            missing.append(word)
            continue
        entries.extend((word, tuple(p)) for p in prons)
    return entries, missing


def add_disambig(entries: Sequence[Entry]) -> tuple[list[Entry], int]:
    """Append ``#1, #2, ...`` to pronunciations that are shared by several words
    (homophones) or are a proper prefix of another pronunciation, so that L can
    be determinised (Kaldi's ``add_lex_disambig.pl``).

    Returns ``(entries_with_disambig, max_disambig)``; ``max_disambig`` is the
    largest ``#k`` used (0 when none), so ``#0 .. #max_disambig`` are needed
    (``#0`` is G's back-off symbol).
    """
    count = Counter(units for _, units in entries)
    prefixes = {units[:i] for units in count for i in range(1, len(units))}
    next_id: Counter[tuple[str, ...]] = Counter()
    out: list[Entry] = []
    max_disambig = 0
    for word, units in entries:
        if count[units] > 1 or units in prefixes:
            next_id[units] += 1
            max_disambig = max(max_disambig, next_id[units])
            units = units + (f"#{next_id[units]}",)
        out.append((word, units))
    return out, max_disambig


def write_lexicon(path: Path, entries: Iterable[Entry]) -> None:
    """``word unit1 unit2 ...`` a line."""
    Path(path).write_text("".join(f"{w} {' '.join(u)}\n" for w, u in entries))


def read_lexicon(path: Path) -> list[Entry]:
    """Inverse of :func:`write_lexicon`; UserError on an entry without units."""
    entries = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        if len(fields) < 2:
            raise UserError(f"{path}:{n}: lexicon entry without units: {line!r}")
        entries.append((fields[0], tuple(fields[1:])))
    return entries


def first_pronunciations(entries: Iterable[Entry]) -> dict[str, tuple[str, ...]]:
    """``{word: units}`` keeping each word's first entry (CMUdict's most common
    pronunciation): the training target of a word."""
    out: dict[str, tuple[str, ...]] = {}
    for word, units in entries:
        out.setdefault(word, units)
    return out
