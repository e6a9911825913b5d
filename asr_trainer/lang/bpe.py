"""BPE units with sentencepiece.

The model is trained so that its piece ids *are* the token ids of tokens.txt:
``<blk>`` is piece 0 (a user-defined symbol, never produced by encoding) and
``<unk>`` is piece 1 (the unit of the ``<UNK>`` word); no ``<s>``/``</s>``.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from asr_trainer.errors import UserError
from asr_trainer.lang.lexicon import Entry
from asr_trainer.lang.symbols import BLANK, UNK_WORD

log = logging.getLogger(__name__)

UNK_PIECE = "<unk>"
_UNITS_RE = re.compile(r"^bpe(\d+)$")


def parse_bpe_units(units: str) -> int | None:
    """``"bpe500" -> 500``; ``None`` when ``units`` is not a BPE spec."""
    m = _UNITS_RE.match(units)
    return int(m.group(1)) if m else None


def train_bpe(transcripts: Sequence[str], vocab_size: int, model_path: Path) -> None:
    """Train a BPE sentencepiece model on ``transcripts``, written to ``model_path``.

    ``vocab_size`` includes ``<blk>`` and ``<unk>``; it is a soft limit, so a
    small corpus yields fewer pieces rather than an error.
    """
    import sentencepiece as spm

    if vocab_size < 3:
        raise UserError(f"units=bpe{vocab_size}: the BPE vocabulary needs at least 3 pieces")
    if not transcripts:
        raise UserError("cannot train BPE units: no transcripts")
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_text("".join(t + "\n" for t in transcripts))
        spm.SentencePieceTrainer.train(
            input=str(text), model_prefix=str(Path(tmp) / "bpe"), model_type="bpe",
            vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
            bos_id=-1, eos_id=-1, unk_id=1, user_defined_symbols=[BLANK],
            num_threads=2, minloglevel=2,
        )
        model_path.write_bytes((Path(tmp) / "bpe.model").read_bytes())
    log.info("trained BPE model %s", model_path)


def load_bpe(model_path: Path):
    """The sentencepiece processor of ``model_path``."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(model_path))


def bpe_pieces(sp) -> list[str]:
    """All pieces in id order (piece id == token id)."""
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def encode_pieces(sp, text: str) -> tuple[str, ...]:
    """Pieces of ``text``; characters unseen in training become ``<unk>``."""
    return tuple(sp.id_to_piece(i) for i in sp.encode(text))


def bpe_lexicon(words: Iterable[str], sp) -> list[Entry]:
    """Each word mapped to its pieces, plus ``<UNK> <unk>``."""
    entries: list[Entry] = [(UNK_WORD, (UNK_PIECE,))]
    for word in sorted(set(words) - {UNK_WORD}):
        entries.append((word, encode_pieces(sp, word)))
    return entries
