"""Tokenizer: phone and BPE lang directories, unknown words."""

from __future__ import annotations

import pytest

from asr_trainer.errors import UserError
from asr_trainer.lang.bpe import bpe_lexicon, bpe_pieces, load_bpe, train_bpe
from asr_trainer.lang.symbols import disambig_symbols, write_symbols
from asr_trainer.lang.tokenizer import Tokenizer

TEXT = ["THE CAT SAT ON THE MAT", "THE DOG SAT", "A CAT AND A DOG", "THEM AND THEY", "THE MATS"]


def _phone_tokenizer():
    tokens = {s: i for i, s in enumerate(["<blk>", "AH", "DH", "K", "AE", "T", "SPN", "#0", "#1"])}
    prons = {"<UNK>": ("SPN",), "THE": ("DH", "AH"), "CAT": ("K", "AE", "T")}
    return Tokenizer(tokens, prons)


def test_phone_tokenizer_maps_unknown_words_to_spn_and_counts_them():
    tok = _phone_tokenizer()
    assert tok.num_outputs == 7
    ids = tok.encode("the CAT ZZYZX CAT ZZYZX")
    assert tok.decode(ids) == ["DH", "AH", "K", "AE", "T", "SPN", "K", "AE", "T", "SPN"]
    assert all(0 < i < tok.num_outputs for i in ids)
    assert tok.unknown_words == {"ZZYZX": 2} and tok.num_unknown == 2


def test_tokenizer_rejects_units_missing_from_tokens():
    with pytest.raises(UserError, match="not in tokens.txt"):
        Tokenizer({"<blk>": 0, "SPN": 1}, {"<UNK>": ("SPN",), "X": ("EH",)})


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lang_bpe")
    train_bpe(TEXT, 40, d / "bpe.model")
    sp = load_bpe(d / "bpe.model")
    pieces = bpe_pieces(sp)
    assert pieces[:2] == ["<blk>", "<unk>"]
    vocab = {w for t in TEXT for w in t.split()}
    (d / "lexicon.txt").write_text("".join(f"{w} {' '.join(u)}\n" for w, u in bpe_lexicon(vocab, sp)))
    write_symbols(d / "tokens.txt", pieces + disambig_symbols(2))
    return d


def test_bpe_tokenizer_round_trips_text(bpe_dir):
    tok = Tokenizer.from_lang_dir(bpe_dir)
    assert tok.num_outputs == len(bpe_pieces(load_bpe(bpe_dir / "bpe.model")))
    for text in TEXT:
        ids = tok.encode(text)
        assert all(0 < i < tok.num_outputs for i in ids)
        assert "".join(tok.decode(ids)).replace("\u2581", " ").strip() == text
    assert tok.num_unknown == 0


def test_bpe_tokenizer_spells_unknown_words_and_counts_them(bpe_dir):
    tok = Tokenizer.from_lang_dir(bpe_dir)
    ids = tok.encode("THE CATS")
    assert "".join(tok.decode(ids)).replace("\u2581", " ").strip() == "THE CATS"
    assert tok.unknown_words == {"CATS": 1}
    ids = tok.encode("QQ")  # a letter never seen in training: the <unk> piece
    assert tok.token2id["<unk>"] in ids


def test_missing_lang_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="run `asr-trainer lang` first"):
        Tokenizer.from_lang_dir(tmp_path / "nope")
