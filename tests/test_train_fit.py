"""End to end on a toy tone corpus: the 1-worker baseline (checkpoints, summary, resume) then greedy decoding and scoring."""

import json

import pytest

from asr_trainer.config import load_config
from asr_trainer.decode.config import DecodeConfig
from asr_trainer.decode.driver import run_decoding
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.report.wer import read_recogs
from asr_trainer.train.config import TrainConfig
from asr_trainer.sync import NoSyncConfig, SimCommunicator
from asr_trainer.train.trainer import fit
from asr_trainer.testing.tones import ALPHABET, char_encode, char_id2token, make_tone_cuts

MODEL = ["tdnn_lstm.conv_dim=32", "tdnn_lstm.lstm_dim=32", "tdnn_lstm.num_lstm_layers=1", "tdnn_lstm.dropout=0"]
TRAIN = ["data.max_duration=8", "data.spec_augment=false", "optim.lr=0.01", "optim.warmup_steps=5",
         "progress_bar=false", "checkpoint.keep_last=2", "checkpoint.every_steps=3", "log_every=1"]


class ToyTokenizer:
    num_outputs = len(ALPHABET) + 2
    id2token = char_id2token()

    @staticmethod
    def encode(text):
        return char_encode(text)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("cuts")
    train = make_tone_cuts(d / "train", 16, seed=1)
    dev = make_tone_cuts(d / "dev", 4, seed=2)
    train.to_file(d / "synth_cuts_train.jsonl.gz")
    dev.to_file(d / "synth_cuts_dev.jsonl.gz")
    dev.to_file(d / "synth_cuts_test.jsonl.gz")
    return d, train, dev


def _baseline(cfg, model_cfg, exp, train, dev) -> dict:
    """What ``asr-trainer train`` runs without --sync: one worker, ``sync none``, always resuming."""
    return fit(cfg, model_cfg, NoSyncConfig(), SimCommunicator(1), exp, char_encode, ToyTokenizer.num_outputs,
               train, dev, resume=True)


@pytest.mark.slow
def test_fit_resume_and_decode(tmp_path, corpus):
    cuts_dir, train, dev = corpus
    model_cfg = load_config(ModelConfig, None, MODEL)
    cfg = load_config(TrainConfig, None, TRAIN + ["num_epochs=2"])
    summary = _baseline(cfg, model_cfg, tmp_path, train, dev)
    assert [r["epoch"] for r in summary["epochs"]] == [1, 2]
    assert summary["removed_train_cuts"] == 0 and summary["epochs"][0]["skipped"] == 0
    assert (tmp_path / "epoch-1.pt").is_file() and (tmp_path / "epoch-2.pt").is_file()
    assert len(list(tmp_path.glob("checkpoint-*.pt"))) == 2  # keep_last
    assert any((tmp_path / "tensorboard").iterdir())
    assert json.loads((tmp_path / "train-summary.json").read_text())["epochs"][1]["epoch"] == 2

    # resume: only the missing epoch is trained
    cfg3 = load_config(TrainConfig, None, TRAIN + ["num_epochs=3"])
    summary3 = _baseline(cfg3, model_cfg, tmp_path, train, dev)
    assert summary3["epochs"][:2] == summary["epochs"]  # the summary covers the whole run
    assert [r["epoch"] for r in summary3["epochs"]] == [1, 2, 3]
    assert summary3["epochs"][2]["train_loss"] < summary["epochs"][0]["train_loss"]

    dcfg = load_config(DecodeConfig, None, ["avg=2", "bootstrap_replications=200"])
    info = run_decoding(dcfg, tmp_path, tmp_path, cuts_dir, "greedy", ToyTokenizer())
    assert info["word_level"] and set(info["sets"]) == {"dev-greedy", "test-greedy"}
    recogs = read_recogs(tmp_path / "recogs-test-greedy.txt")
    assert sorted(r[0] for r in recogs) == sorted(dev.ids)
    assert all(r[1] == c.supervisions[0].text.split() for r, c in zip(recogs, sorted(dev, key=lambda c: c.id)))
    wer = json.loads((tmp_path / "wer-test-greedy.json").read_text())
    assert wer["ci95"][0] <= wer["wer"] <= wer["ci95"][1]
    assert "PER-SPEAKER" in (tmp_path / "errs-test-greedy.txt").read_text()

    class WrongTokenizer(ToyTokenizer):
        num_outputs = ToyTokenizer.num_outputs + 1

    with pytest.raises(UserError, match="outputs but"):
        run_decoding(dcfg, tmp_path, tmp_path, cuts_dir, "greedy", WrongTokenizer())
