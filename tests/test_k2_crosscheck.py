"""The optional k2 backend: a clear error without k2, and agreement with kaldi-decoder with it.

The agreement tests run only when the k2 environment of local/make_k2_env.sh
exists ($ASR_K2_ENV or ~/.cache/asr_trainer/k2-py39); the suite never builds it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr_trainer.decode.k2_crosscheck import (
    MAX_WER_DIFF, MIN_IDENTICAL, crosscheck, k2_python, load_posteriors, main, save_posteriors,
)
from asr_trainer.errors import UserError

TEXT = """THE CAT SAT ON THE MAT
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
WE READ THE BOOK AT HOME
THE WAY HOME IS LONG"""


def noisy_posteriorgram(ids, num_outputs, peak, rng, frames_per_token=2):
    """(T, V) CTC log-posteriors whose best path spells ``ids``: noisy logits, +peak on the truth."""
    frames = [f for i in ids for f in [i] * frames_per_token + [0]]
    logits = rng.standard_normal((len(frames), num_outputs))
    logits[np.arange(len(frames)), frames] += peak
    logits -= logits.max(axis=1, keepdims=True)
    return (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)


def test_decode_package_imports_without_k2():
    code = ("import sys; sys.modules['k2'] = None; import asr_trainer.decode, "
            "asr_trainer.decode.k2_backend, asr_trainer.decode.k2_crosscheck; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_asking_for_k2_without_it_is_a_clear_user_error(monkeypatch, tmp_path):
    from asr_trainer.decode import k2_backend

    monkeypatch.setitem(sys.modules, "k2", None)  # import k2 -> ImportError
    assert not k2_backend.k2_available()
    with pytest.raises(UserError, match="k2 is not installed in this environment: run local/make_k2_env.sh"):
        k2_backend.make_k2_decoder(tmp_path)


def test_decode_driver_with_decoder_k2_is_a_clear_user_error_without_k2(monkeypatch, tmp_path):
    from asr_trainer.decode.config import DecodeConfig
    from asr_trainer.decode.driver import make_decoder

    monkeypatch.setitem(sys.modules, "k2", None)
    with pytest.raises(UserError, match="k2 is not installed"):
        make_decoder("hlg", DecodeConfig(decoder="k2"), tmp_path, {0: "<blk>"})


def test_missing_k2_env_is_reported(tmp_path, capsys):
    assert k2_python(tmp_path / "nowhere") is None
    rc = main(["compare", "--lang-dir", str(tmp_path), "--posteriors", str(tmp_path / "p.npz"),
               "--k2-env", str(tmp_path / "nowhere")])
    assert rc == 2 and "k2 environment not built" in capsys.readouterr().err


def test_posteriors_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    post = {"a": rng.standard_normal((7, 5)).astype(np.float32), "b": rng.standard_normal((3, 5)).astype(np.float32)}
    save_posteriors(tmp_path / "p.npz", post, {"a": ["HELLO", "WORLD"]})
    back, refs = load_posteriors(tmp_path / "p.npz")
    assert list(back) == ["a", "b"] and all(np.array_equal(back[k], post[k]) for k in post)
    assert refs == {"a": ["HELLO", "WORLD"], "b": []}
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a posteriors file"):
        load_posteriors(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def k2_env():
    python = k2_python()
    if python is None:
        pytest.skip("k2 environment not built: run local/make_k2_env.sh")
    return python


@pytest.fixture(scope="module")
def lang_dir(tmp_path_factory):
    from asr_trainer.lang.prepare import prepare_lang

    root = tmp_path_factory.mktemp("k2lang")
    (root / "lm.txt").write_text(TEXT + "\n")
    prepare_lang(TEXT.splitlines(), root / "lm.txt", "phone", root / "lang_phone")
    return root / "lang_phone"


@pytest.mark.slow
def test_k2_agrees_with_kaldi_decoder(k2_env, lang_dir, tmp_path):
    from asr_trainer.lang.tokenizer import Tokenizer

    tok = Tokenizer.from_lang_dir(lang_dir)
    rng = np.random.default_rng(1)
    texts = TEXT.splitlines() + ["THE CAT SAT ON THE RUG", "A RED BOOK", "THE DOG RAN TO THE MAT"]
    post, refs = {}, {}
    for peak in (8.0, 2.0, 1.2):  # sharp, moderate and weak peaks: the LM has work to do
        for i, text in enumerate(texts):
            post[f"p{peak}-{i}"] = noisy_posteriorgram(tok.encode(text), tok.num_outputs, peak, rng)
            refs[f"p{peak}-{i}"] = text.split()
    save_posteriors(tmp_path / "post.npz", post, refs)
    result = crosscheck(lang_dir, tmp_path / "post.npz", k2_env)
    print(result.summary())
    assert result.utterances == len(post)
    assert result.identical_share >= MIN_IDENTICAL
    assert abs(result.wer_k2 - result.wer_kaldi) <= MAX_WER_DIFF
    assert result.wer_kaldi > 0, "the weak posteriors should make some errors (else the test is too easy)"
    assert result.passed and (lang_dir / "HLG.k2.pt").is_file()


@pytest.mark.slow
def test_k2_decode_columns_are_token_ids(k2_env, lang_dir, tmp_path):
    """Sharp posteriors decode to the text; rolling the columns by one (blank/ids off by one) does not."""
    from asr_trainer.decode.k2_crosscheck import run_k2_decode
    from asr_trainer.lang.tokenizer import Tokenizer

    tok = Tokenizer.from_lang_dir(lang_dir)
    rng = np.random.default_rng(2)
    text = "I READ THE RED BOOK"  # READ and RED are homophones (R EH D): the LM decides
    lp = noisy_posteriorgram(tok.encode(text), tok.num_outputs, 10.0, rng)
    save_posteriors(tmp_path / "p.npz", {"ok": lp, "rolled": np.roll(lp, 1, axis=1), "empty": lp[:0]})
    out = run_k2_decode(k2_env, lang_dir, tmp_path / "p.npz", tmp_path / "h.json", 15.0, 7000, 30)
    assert out["hyps"]["ok"] == text.split()
    assert out["hyps"]["rolled"] != text.split()
    assert out["hyps"]["empty"] == []
    # A padded (N, T, V) batch with lengths decodes like the list of arrays.
    code = (f"import json, numpy as np; from asr_trainer.decode.k2_backend import K2HlgDecoder\n"
            f"from asr_trainer.decode.k2_crosscheck import load_posteriors\n"
            f"post, _ = load_posteriors({str(tmp_path / 'p.npz')!r}); xs = [post['ok'], post['rolled']]\n"
            f"pad = np.zeros((2, len(xs[0]) + 3, xs[0].shape[1]), np.float32); pad[0, :len(xs[0])] = xs[0]\n"
            f"pad[1, :len(xs[1])] = xs[1]; d = K2HlgDecoder({str(lang_dir)!r})\n"
            f"print(json.dumps([d.decode_batch(pad, np.array([len(x) for x in xs])), d.decode_batch(xs)]))")
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run([str(k2_env), "-c", code], capture_output=True, text=True, env={"PYTHONPATH": root})
    assert proc.returncode == 0, proc.stderr
    padded, listed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert padded == listed == [out["hyps"]["ok"], out["hyps"]["rolled"]]


def test_make_k2_env_says_when_there_is_no_python39(tmp_path):
    script = Path(__file__).resolve().parents[1] / "local" / "make_k2_env.sh"
    (tmp_path / "bin").mkdir()  # an empty PATH: no python3.9 anywhere, whatever the machine has
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path / "home"), "ASR_K2_ENV": str(tmp_path / "env"),
           "PYTHON39": str(tmp_path / "no-python")}
    proc = subprocess.run(["/bin/bash", str(script)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "no Python 3.9 found" in proc.stderr
    assert not (tmp_path / "env").exists()
