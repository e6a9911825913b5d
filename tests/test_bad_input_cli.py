"""Bad input that must stop ``asr-trainer`` cleanly (exit 2, the offending key named, no traceback, no work done).

Data-level bad input (corrupt / truncated / zero-length audio, empty transcripts,
non-UTF-8 text, missing corpus files, cuts over max_duration, unknown words) is
covered in tests/test_data_corpora.py and tests/test_lang_tokenizer.py; NaN
batches and untrainable cuts in tests/test_train_robustness.py. Here: the
train, model, sync and decode settings through the CLI, and resuming from a
checkpoint that does not fit or is damaged.
"""

from pathlib import Path

import pytest

from asr_trainer.bin.main import main as cli
from asr_trainer import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]


def _train(tmp_path: Path, *extra: str) -> list[str]:
    # lang/cuts dirs do not exist: a configuration error must be reported before they are looked at
    return ["train", "--exp-dir", str(tmp_path / "exp"), "--lang-dir", str(tmp_path / "lang"), "--cuts-dir",
            str(tmp_path / "cuts"), "--config", str(ROOT / "conf/train.yaml"), *extra]


def _assert_clean_failure(code: int, err: str, key: str, tmp_path: Path) -> None:
    assert code == 2, err
    assert key in err and "Traceback" not in err, err
    assert not list(tmp_path.rglob("*.pt"))


@pytest.mark.parametrize("extra, key", [
    (["nmu_epochs=3"], "nmu_epochs"),  # unknown key
    (["num_epochs=three"], "num_epochs"),  # wrong type
    (["data.max_duration=-1"], "max_duration"),  # out of range
    (["model.tdnn_lstm.lstm_dimm=8"], "lstm_dimm"),  # unknown model key
    (["--sync", "gtc", "--simulate-workers", "2", "sync.tua=0.1"], "tua"),  # unknown sync key
    (["--sync", "bmuf", "--simulate-workers", "2", "sync.block_size=big"], "block_size"),  # wrong sync type
])
def test_train_settings_errors_exit_2_naming_the_key(tmp_path, capsys, extra, key):
    _assert_clean_failure(cli(_train(tmp_path, *extra)), capsys.readouterr().err, key, tmp_path)


def test_train_yaml_with_unknown_key(tmp_path, capsys):
    bad = tmp_path / "train.yaml"
    bad.write_text((ROOT / "conf/train.yaml").read_text() + "chekpoint_every: 5\n")
    args = _train(tmp_path)
    args[args.index("--config") + 1] = str(bad)
    _assert_clean_failure(cli(args), capsys.readouterr().err, "chekpoint_every", tmp_path)


def test_sync_yaml_with_wrong_type(tmp_path, capsys):
    bad = tmp_path / "gtc.yaml"
    bad.write_text("name: gtc\ntau: [0.1]\n")
    code = cli(_train(tmp_path, "--sync-config", str(bad), "--simulate-workers", "2"))
    _assert_clean_failure(code, capsys.readouterr().err, "tau", tmp_path)


@pytest.mark.parametrize("extra, key", [(["beem=3"], "beem"), (["avg=two"], "avg")])
def test_decode_settings_errors_exit_2_naming_the_key(tmp_path, capsys, extra, key):
    args = ["decode", "--exp-dir", str(tmp_path / "exp"), "--lang-dir", str(tmp_path / "lang"), "--cuts-dir",
            str(tmp_path / "cuts"), "--method", "greedy", "--config", str(ROOT / "conf/decode.yaml"), *extra]
    _assert_clean_failure(cli(args), capsys.readouterr().err, key, tmp_path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished 2-worker simulated GTC run with a mid-epoch checkpoint, and its corpus."""
    from asr_trainer.testing.tones import write_tone_corpus

    return write_tone_corpus(tmp_path_factory.mktemp("badresume"), {"train": 12, "dev": 2})


def _run_args(d: Path, exp: Path, workers: str, *extra: str) -> list[str]:
    return ["train", "--exp-dir", str(exp), "--lang-dir", str(d / "lang"), "--cuts-dir", str(d / "cuts"),
            "--config", str(ROOT / "conf/train.yaml"), "--sync", "gtc", "--simulate-workers", workers,
            "sync.tau=0.01", "num_epochs=1", "progress_bar=false", "num_threads=1", "data.max_duration=1.5",
            "checkpoint.every_steps=2", "model.tdnn_lstm.conv_dim=8", "model.tdnn_lstm.lstm_dim=8",
            "model.tdnn_lstm.num_lstm_layers=1", *extra]


def test_resume_with_other_worker_count_or_damaged_state(tiny_run, tmp_path, capsys):
    exp = tmp_path / "exp"
    assert cli(_run_args(tiny_run, exp, "2")) == 0
    capsys.readouterr()
    code = cli(_run_args(tiny_run, exp, "3", "--resume"))
    err = capsys.readouterr().err
    assert code == 2 and "use the same number" in err and "Traceback" not in err
    latest = ckpt.read_pointer(exp)
    (exp / latest.files[1]).write_bytes(b"truncated")  # the strategy state latest.json names
    code = cli(_run_args(tiny_run, exp, "2", "--resume"))
    err = capsys.readouterr().err
    assert code == 0 and "cannot read checkpoint" in err and "going on from checkpoint-" in err  # the previous set
