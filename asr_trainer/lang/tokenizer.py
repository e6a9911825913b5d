"""Text -> CTC target token ids, for the trainer.

Example::

    tok = Tokenizer.from_lang_dir(Path("data/lang_phone"))
    tok.encode("THE CAT")      # [ids in 1 .. tok.num_outputs - 1]
    tok.num_outputs            # V, the model output dimension (blank included)

A word in the lexicon gets its first pronunciation (phones) or its pieces
(BPE).  A word outside it becomes the ``<UNK>`` word's unit (``SPN``) for
phones, or is spelled with sentencepiece pieces for BPE; either way it is
counted in :attr:`Tokenizer.unknown_words`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Mapping, Sequence

from asr_trainer.errors import UserError
from asr_trainer.lang import bpe
from asr_trainer.lang.lexicon import first_pronunciations, read_lexicon
from asr_trainer.lang.symbols import UNK_WORD, num_model_outputs, read_symbols


class Tokenizer:
    """Maps upper-case word sequences to token ids (never the blank, id 0)."""

    def __init__(
        self,
        tokens: Mapping[str, int],
        pronunciations: Mapping[str, Sequence[str]],
        spell_unknown: Callable[[str], Sequence[str]] | None = None,
    ):
        self.token2id = dict(tokens)
        self.num_outputs = num_model_outputs(self.token2id)
        self.id2token = {i: t for t, i in self.token2id.items() if i < self.num_outputs}
        self.pronunciations = dict(pronunciations)
        if spell_unknown is None and UNK_WORD not in self.pronunciations:
            raise UserError(f"the lexicon has no {UNK_WORD} entry")
        self._spell_unknown = spell_unknown
        self.unknown_words: Counter[str] = Counter()
        for units in self.pronunciations.values():
            self._ids(units)  # fail early on a unit missing from tokens.txt

    @classmethod
    def from_lang_dir(cls, lang_dir: Path) -> "Tokenizer":
        """Load tokens.txt, lexicon.txt and (for BPE) bpe.model of ``lang_dir``."""
        lang_dir = Path(lang_dir)
        tokens = read_symbols(lang_dir / "tokens.txt")
        if not (lang_dir / "lexicon.txt").is_file():
            raise UserError(f"{lang_dir}/lexicon.txt does not exist (run `asr-trainer lang` first)")
        prons = first_pronunciations(read_lexicon(lang_dir / "lexicon.txt"))
        spell = None
        if (lang_dir / "bpe.model").is_file():
            sp = bpe.load_bpe(lang_dir / "bpe.model")
            spell = lambda word: bpe.encode_pieces(sp, word)  # noqa: E731
        return cls(tokens, prons, spell)

    @property
    def num_unknown(self) -> int:
        """How many word occurrences were not in the lexicon so far."""
        return sum(self.unknown_words.values())

    def encode(self, text: str) -> list[int]:
        """Token ids (1 .. num_outputs - 1) of the white-space separated words."""
        ids: list[int] = []
        for word in text.upper().split():
            units = self.pronunciations.get(word)
            if units is None:
                self.unknown_words[word] += 1
                units = (self._spell_unknown(word) if self._spell_unknown
                         else self.pronunciations[UNK_WORD])
            ids.extend(self._ids(units))
        return ids

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Token ids back to unit strings (for logging and tests)."""
        return [self.id2token[i] for i in ids]

    def _ids(self, units: Sequence[str]) -> list[int]:
        try:
            ids = [self.token2id[u] for u in units]
        except KeyError as e:
            raise UserError(f"unit {e.args[0]!r} of the lexicon is not in tokens.txt") from None
        if any(not 0 < i < self.num_outputs for i in ids):
            raise UserError(f"units {units} include the blank or a disambiguation symbol")
        return ids
