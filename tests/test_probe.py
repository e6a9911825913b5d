"""``asr-trainer train --probe-steps``: a run's speed from a few in-memory steps of its own strategy and workers."""
import subprocess
import sys

import pytest
import torch
from lhotse import load_manifest

from asr_trainer.config import load_config
from asr_trainer.data.cuts import load_cuts
from asr_trainer.errors import UserError
from asr_trainer.models import ModelConfig
from asr_trainer.sync import SimCommunicator, load_sync_config
from asr_trainer.testing.tones import ALPHABET, char_encode, write_tone_corpus
from asr_trainer.train.config import TrainConfig
from asr_trainer.train.probe import probe_run

NUM_OUTPUTS = len(ALPHABET) + 2
SMALL = ["kind=tdnn_lstm", "tdnn_lstm.conv_dim=32", "tdnn_lstm.lstm_dim=32", "tdnn_lstm.num_lstm_layers=1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tone_corpus(tmp_path_factory.mktemp("probe_tones"), {"train": 20, "dev": 2})


def _probe(corpus, sync: str, workers: int, steps: int, extra=()):
    cfg = load_config(TrainConfig, None, ["data.max_cuts=1", "data.max_duration=5", "num_threads=1",
                                          "progress_bar=false", *extra])
    threads = torch.get_num_threads()
    try:
        return probe_run(cfg, load_config(ModelConfig, None, SMALL), load_sync_config(f"conf/sync/{sync}.yaml", []),
                         SimCommunicator(workers), char_encode, NUM_OUTPUTS,
                         load_cuts(corpus / "cuts", "synth", "train"), load_cuts(corpus / "cuts", "synth", "dev"), steps)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("sync", ["allreduce", "gtc", "bmuf"])
def test_probe_times_the_steps_asked_for_on_every_worker(corpus, sync):
    """4 one-utterance workers, 3 timed steps after 1 untimed one: 12 utterances' audio timed, and the epoch is
    the 20 training cuts' audio."""
    result = _probe(corpus, sync, 4, 3)
    durations = sorted(c.duration for c in load_manifest(corpus / "cuts" / "synth_cuts_train.jsonl.gz"))
    assert result.steps == 3
    # 12 of the 20 utterances (which ones depends on the shuffle): between the 12 shortest and the 12 longest
    assert sum(durations[:12]) - 0.05 <= result.audio_s <= sum(durations[-12:]) + 0.05
    assert result.epoch_audio_s == pytest.approx(sum(durations))
    assert result.seconds > 0 and result.epoch_seconds == pytest.approx(result.epoch_audio_s / result.real_time_factor)


def test_probe_needs_enough_steps_in_an_epoch(corpus):
    with pytest.raises(UserError, match="only"):
        _probe(corpus, "allreduce", 4, 5)  # 20 cuts / 4 workers: 5 steps an epoch, the probe needs 6
    with pytest.raises(UserError, match=">= 1"):
        _probe(corpus, "allreduce", 4, 0)


def test_cli_probe_prints_the_speed_and_writes_nothing(corpus, tmp_path):
    exp = tmp_path / "exp"
    proc = subprocess.run([sys.executable, "-m", "asr_trainer.bin.main", "train", "--exp-dir", str(exp),
                           "--lang-dir", str(corpus / "lang"), "--cuts-dir", str(corpus / "cuts"),
                           "--simulate-workers", "2", "--sync", "gtc", "--probe-steps", "2",
                           *[f"model.{o}" for o in SMALL], "data.max_cuts=1", "num_threads=1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("probe: 2 steps of 2 worker(s), sync gtc:") and "x real time; an epoch of" in line, line
    assert not exp.exists()
