"""prepare_lang end to end on a tiny text, and HLG decoding with kaldi-decoder."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from asr_trainer.bin.main import main
from asr_trainer.decode.wfst import HlgDecoder
from asr_trainer.errors import UserError
from asr_trainer.lang.prepare import OUTPUTS, prepare_lang
from asr_trainer.lang.symbols import read_symbols
from asr_trainer.lang.tokenizer import Tokenizer

SENTENCES = """THE CAT SAT ON THE MAT
THE DOG SAT ON THE RUG
I READ THE RED BOOK
SHE READ A BOOK YESTERDAY
THE RED DOG RAN HOME
A CAT AND A DOG
WE KNOW THE WAY HOME
THERE IS NO WAY
THE BOOK IS RED
HE RAN TO THE DOG
THE MAT IS ON THE FLOOR
I KNOW A CAT
SHE SAT ON THE RED RUG
WE READ THE BOOK AT HOME
THE DOG IS NOT RED
HE HAS NO CAT
THE WAY HOME IS LONG
I RAN HOME
A BOOK ON THE FLOOR
WE SAT AT HOME"""


@pytest.fixture(scope="module")
def lm_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "lm.txt"
    path.write_text(SENTENCES + "\n")
    return path


@pytest.fixture(scope="module")
def phone_dir(tmp_path_factory, lm_text):
    out = tmp_path_factory.mktemp("lang") / "lang_phone"
    prepare_lang(SENTENCES.splitlines()[:15], lm_text, "phone", out)
    return out


def posteriorgram(ids, num_outputs, frames_per_token=2, peak=0.9):
    """Hand-made CTC output: each token for a few frames, then a blank frame."""
    frames = [f for i in ids for f in [i] * frames_per_token + [0]]
    x = np.full((len(frames), num_outputs), (1 - peak) / (num_outputs - 1))
    x[np.arange(len(frames)), frames] = peak
    return np.log(x).astype(np.float32)


def test_prepare_lang_writes_the_contract_files(phone_dir):
    for name in OUTPUTS + ("lm/G_3_gram.arpa", "lexicon_disambig.txt"):
        assert (phone_dir / name).is_file(), name
    tokens = read_symbols(phone_dir / "tokens.txt")
    assert tokens["<blk>"] == 0 and tokens["SPN"] == 40
    assert list(tokens)[41:] == [f"#{i}" for i in range(len(tokens) - 41)]
    lexicon = (phone_dir / "lexicon.txt").read_text().splitlines()
    assert "READ R IY D" in lexicon and "READ R EH D" in lexicon
    words = read_symbols(phone_dir / "words.txt")
    assert words["<eps>"] == 0 and {"<UNK>", "#0", "<s>", "</s>", "YESTERDAY"} <= set(words)


def test_prepare_lang_is_idempotent(phone_dir, lm_text, caplog):
    before = (phone_dir / "HLG.fst").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        prepare_lang([], lm_text, "phone", phone_dir)
    assert "already done" in caplog.text
    assert (phone_dir / "HLG.fst").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="was built with"):
        prepare_lang([], lm_text, "bpe100", phone_dir)


@pytest.mark.parametrize("text", ["THE CAT SAT ON THE MAT", "WE KNOW THE WAY HOME", "I READ THE RED BOOK"])
def test_hlg_decodes_a_hand_made_posteriorgram(phone_dir, text):
    tok = Tokenizer.from_lang_dir(phone_dir)
    decoder = HlgDecoder(phone_dir)
    log_probs = posteriorgram(tok.encode(text), tok.num_outputs)
    assert decoder.decode(log_probs) == text.split()
    # Column j is token j: shifting the columns by one must break the result.
    assert decoder.decode(np.roll(log_probs, 1, axis=1)) != text.split()


def test_hlg_lets_the_lm_choose_between_homophones(phone_dir):
    # R EH D is both READ and RED: "I READ THE ..." vs "THE RED DOG ...".
    tok = Tokenizer.from_lang_dir(phone_dir)
    decoder = HlgDecoder(phone_dir)
    texts = ["I READ THE BOOK", "THE RED DOG RAN HOME"]
    phones = {"READ": ["R", "EH", "D"], "RED": ["R", "EH", "D"]}
    batch = []
    for text in texts:
        ids = [i for w in text.split() for i in
               ([tok.token2id[p] for p in phones[w]] if w in phones else tok.encode(w))]
        batch.append(posteriorgram(ids, tok.num_outputs))
    assert decoder.decode_batch(batch) == [t.split() for t in texts]


def test_unknown_words_decode_as_unk(phone_dir):
    tok = Tokenizer.from_lang_dir(phone_dir)
    ids = tok.encode("THE ZZYZX SAT")
    assert tok.num_unknown == 1
    assert HlgDecoder(phone_dir).decode(posteriorgram(ids, tok.num_outputs)) == ["THE", "<UNK>", "SAT"]


def test_mismatched_output_dimension_is_a_clear_user_error(phone_dir):
    decoder = HlgDecoder(phone_dir)
    with pytest.raises(UserError, match=f"model has 40 outputs but {phone_dir} has 41 tokens"):
        decoder.decode(np.zeros((5, 40), dtype=np.float32))


def test_bpe_lang_end_to_end_via_cli(tmp_path, lm_text):
    from lhotse import SupervisionSegment, SupervisionSet

    sups = SupervisionSet.from_segments(
        SupervisionSegment(id=f"s{i}", recording_id="r", start=0, duration=1, text=t)
        for i, t in enumerate(SENTENCES.splitlines()))
    sups.to_file(tmp_path / "supervisions.jsonl.gz")
    out = tmp_path / "lang_bpe"
    rc = main(["lang", "--transcripts-from", str(tmp_path / "supervisions.jsonl.gz"),
               "--lm-text", str(lm_text), "--units", "bpe60", "--out-dir", str(out)])
    assert rc == 0 and (out / "bpe.model").is_file()
    tok = Tokenizer.from_lang_dir(out)
    text = "THE RED DOG SAT ON THE MAT"
    assert HlgDecoder(out).decode(posteriorgram(tok.encode(text), tok.num_outputs)) == text.split()


def test_bad_units_and_empty_lm_text_are_user_errors(tmp_path, lm_text):
    with pytest.raises(UserError, match="units must be"):
        prepare_lang(["A CAT"], lm_text, "chars", tmp_path / "x")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        prepare_lang(["A CAT"], tmp_path / "empty.txt", "phone", tmp_path / "y")


def test_cli_reports_a_missing_manifest_without_a_stack_trace(tmp_path, lm_text, capsys):
    rc = main(["lang", "--transcripts-from", str(tmp_path / "missing.jsonl.gz"),
               "--lm-text", str(lm_text), "--units", "phone", "--out-dir", str(tmp_path / "x")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
