"""Lexicon, disambiguation symbols and the L transducer."""

from __future__ import annotations

import kaldifst

from asr_trainer.lang.graph import build_lexicon_fst
from asr_trainer.lang.lexicon import add_disambig, phone_lexicon, read_lexicon, write_lexicon
from asr_trainer.lang.symbols import disambig_symbols

CMU = {
    "READ": (("R", "IY", "D"), ("R", "EH", "D")),
    "RED": (("R", "EH", "D"),),
    "A": (("AH",), ("EY",)),
    "AN": (("AH", "N"),),
    "NO": (("N", "OW"),),
    "KNOW": (("N", "OW"),),
}


def test_phone_lexicon_keeps_all_pronunciations_and_reports_missing():
    entries, missing = phone_lexicon(["READ", "RED", "ZZYZX"], CMU)
    assert entries[0] == ("<UNK>", ("SPN",))
    assert ("READ", ("R", "IY", "D")) in entries and ("READ", ("R", "EH", "D")) in entries
    assert missing == ["ZZYZX"]


def test_disambig_marks_homophones_and_prefixes():
    entries, _ = phone_lexicon(CMU, CMU)
    out, max_disambig = add_disambig(entries)
    d = dict(((w, u[:-1]), u[-1]) if u[-1].startswith("#") else ((w, u), None) for w, u in out)
    assert {d[("READ", ("R", "EH", "D"))], d[("RED", ("R", "EH", "D"))]} == {"#1", "#2"}
    assert {d[("NO", ("N", "OW"))], d[("KNOW", ("N", "OW"))]} == {"#1", "#2"}
    assert d[("A", ("AH",))] == "#1"  # prefix of AN
    assert d[("READ", ("R", "IY", "D"))] is None and d[("AN", ("AH", "N"))] is None
    assert max_disambig == 2
    prons = [u for _, u in out]
    assert len(prons) == len(set(prons))  # now every pronunciation is unique ...
    assert not any(a != b and b[: len(a)] == a for a in prons for b in prons)  # ... and prefix-free


def test_lexicon_file_round_trip(tmp_path):
    entries, _ = phone_lexicon(CMU, CMU)
    write_lexicon(tmp_path / "lexicon.txt", entries)
    assert read_lexicon(tmp_path / "lexicon.txt") == entries


def _transduce(fst, input_ids):
    """Output labels of the best path of ``input_ids`` through ``fst``."""
    acceptor = kaldifst.make_linear_acceptor(input_ids)
    kaldifst.arcsort(fst, sort_type="ilabel")
    best = kaldifst.shortest_path(kaldifst.compose(acceptor, fst))
    ok, _, out, _ = kaldifst.get_linear_symbol_sequence(best)
    assert ok
    return out


def test_lexicon_fst_separates_homophones_by_disambig_symbol():
    entries, _ = phone_lexicon(CMU, CMU)
    out, max_disambig = add_disambig(entries)
    units = sorted({u for _, us in out for u in us if not u.startswith("#")})
    tokens = {s: i for i, s in enumerate(["<blk>", *units, *disambig_symbols(max_disambig + 1)])}
    words = {s: i for i, s in enumerate(["<eps>", "<UNK>", *sorted(CMU), "#0"])}
    lex = build_lexicon_fst(out, tokens, words)
    id2word = {i: w for w, i in words.items()}
    by_pron = {u: w for w, u in out}
    for pron in [("R", "EH", "D", "#1"), ("R", "EH", "D", "#2"), ("AH", "#1"), ("AH", "N")]:
        got = _transduce(lex, [tokens[u] for u in pron])
        assert [id2word[i] for i in got] == [by_pron[pron]]
    # Two words in a row, and G's #0 passes through L unchanged.
    seq = [tokens[u] for u in ("N", "OW", "#1", "#0", "R", "IY", "D")]
    assert [id2word[i] for i in _transduce(lex, seq)] == [by_pron[("N", "OW", "#1")], "#0", "READ"]
