"""Spell out numbers in English words (cardinals and ordinals such as ``3rd``).

Example: ``spell_numbers("1,200 men and the 3rd day") == "one thousand two hundred men and the third day"``.
"""

from __future__ import annotations

import re

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_NUMBER = re.compile(r"\b(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th)?\b", re.IGNORECASE)


def number_to_words(n: int) -> str:
    """Cardinal ``n >= 0`` in words: ``number_to_words(1984) == "one thousand nine hundred eighty four"``."""
    if n < 0:
        raise ValueError(f"negative number {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            words = f"{number_to_words(head)} {name}"
            return words if rest == 0 else f"{words} {number_to_words(rest)}"
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """Ordinal in words: ``ordinal_to_words(21) == "twenty first"``."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def spell_numbers(text: str) -> str:
    """Replace every digit string (``12``, ``1,200``, ``3rd``) in ``text`` by words."""

    def repl(m: re.Match[str]) -> str:
        n = int(m.group(1).replace(",", ""))
        return ordinal_to_words(n) if m.group(2) else number_to_words(n)

    return _NUMBER.sub(repl, text)
