"""Symbol tables (``tokens.txt``, ``words.txt``): one ``symbol id`` pair a line.

Layout of a lang directory's tables (see :mod:`asr_trainer.lang.prepare`):

* ``tokens.txt``: ``<blk> 0`` first (the CTC blank is model output 0), then the
  units with ids ``1 .. V-1`` (``V`` = model output dimension), then the
  disambiguation symbols ``#0, #1, ...`` with ids ``V, V+1, ...``.  The
  disambiguation symbols only label graph arcs; they are never model outputs.
* ``words.txt``: ``<eps> 0``, ``<UNK> 1``, the words (sorted), then ``#0``,
  ``<s>``, ``</s>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from asr_trainer.errors import UserError

BLANK = "<blk>"
EPSILON = "<eps>"
UNK_WORD = "<UNK>"
BOS = "<s>"
EOS = "</s>"
DISAMBIG_RE = re.compile(r"^#\d+$")


def disambig_symbols(count: int) -> list[str]:
    """``["#0", "#1", ..., f"#{count-1}"]``."""
    return [f"#{i}" for i in range(count)]


def write_symbols(path: Path, symbols: Iterable[str]) -> None:
    """Write ``symbol id`` lines, ids 0, 1, ... in the given order."""
    lines = [f"{s} {i}\n" for i, s in enumerate(symbols)]
    Path(path).write_text("".join(lines))


def read_symbols(path: Path) -> dict[str, int]:
    """Read a ``symbol id`` table into ``{symbol: id}``; UserError if malformed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist (run `asr-trainer lang` first)")
    table: dict[str, int] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise UserError(f"{path}:{n}: expected 'symbol id', got {line!r}")
        table[fields[0]] = int(fields[1])
    return table


def num_model_outputs(tokens: dict[str, int]) -> int:
    """V: the number of tokens before the first disambiguation symbol ``#0``."""
    return tokens.get("#0", len(tokens))
