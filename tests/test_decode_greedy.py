"""Greedy CTC decoding, word assembly per unit type, and agreement with HLG on a peaked posteriorgram."""


import numpy as np
import pytest

from asr_trainer.decode.greedy import GreedyDecoder, greedy_ids, tokens_to_words, word_mode


def peaked(ids, num_outputs, frames_per_token=2, peak=0.99):
    """Posteriorgram (T, V) with blank between tokens and probability ``peak`` on the intended symbol."""
    path = [0]
    for t in ids:
        path += [t] * frames_per_token + [0]
    probs = np.full((len(path), num_outputs), (1 - peak) / (num_outputs - 1))
    probs[np.arange(len(path)), path] = peak
    return np.log(probs).astype(np.float32)


def test_greedy_merges_repeats_and_drops_blanks():
    assert greedy_ids(peaked([3, 3, 1], 5)) == [3, 3, 1]  # blank separates the repeated 3
    lp = np.log(np.eye(5)[[0, 2, 2, 0, 2, 4, 4]] * 0.9 + 0.02)
    assert greedy_ids(lp) == [2, 2, 4]


def test_tokens_to_words_per_unit_type():
    assert word_mode(["<blk>", "A", "|"]) == "sep"
    assert tokens_to_words(["A", "B", "|", "C"], "sep") == ["AB", "C"]
    assert word_mode(["<blk>", "\u2581TH", "E"]) == "sp"
    assert tokens_to_words(["\u2581TH", "E", "\u2581CAT"], "sp") == ["THE", "CAT"]
    assert tokens_to_words(["DH", "AH0"], word_mode(["<blk>", "DH", "AH0"])) == ["DH", "AH0"]


def test_greedy_decoder_on_char_units():
    id2token = {0: "<blk>", 1: "A", 2: "B", 3: "|"}
    assert GreedyDecoder(id2token).decode(peaked([1, 2, 3, 2], 4)) == ["AB", "B"]


@pytest.fixture(scope="module")
def phone_lang(tmp_path_factory):
    prepare = pytest.importorskip("asr_trainer.lang.prepare", reason="lang preparation not available")
    d = tmp_path_factory.mktemp("lang")
    text = ["THE CAT SAT", "A DOG RAN", "THE DOG SAT ON THE MAT"]
    (d / "lm.txt").write_text("\n".join(text) + "\n")
    prepare.prepare_lang(text, d / "lm.txt", "phone", d / "lang", ngram_order=2)
    return d / "lang"


def test_greedy_and_hlg_agree_on_peaked_posteriorgram(phone_lang):
    wfst = pytest.importorskip("asr_trainer.decode.wfst", reason="asr_trainer/decode/wfst.py not written yet")
    from asr_trainer.lang.tokenizer import Tokenizer

    tok = Tokenizer.from_lang_dir(phone_lang)
    hlg = wfst.HlgDecoder(phone_lang, beam=10.0, max_active=1000, min_active=10, acoustic_scale=1.0)
    for sentence in ["THE DOG SAT", "A CAT RAN ON THE MAT"]:
        ids = tok.encode(sentence)
        lp = peaked(ids, tok.num_outputs)
        assert greedy_ids(lp) == ids
        assert hlg.decode(lp) == sentence.split()


def test_model_lang_mismatch_fails_clearly(phone_lang):
    from asr_trainer.decode.driver import check_outputs
    from asr_trainer.errors import UserError
    from asr_trainer.lang.tokenizer import Tokenizer

    class Model:
        num_outputs = Tokenizer.from_lang_dir(phone_lang).num_outputs + 1

    with pytest.raises(UserError, match="outputs but"):
        check_outputs(Model(), Model.num_outputs - 1, phone_lang)
