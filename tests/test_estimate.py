"""Time up front: the recipe's estimate (a throughput probe on the run's own data, times the work left) and each
epoch's log line with the time left."""

from pathlib import Path

import pytest

from asr_trainer.bin.main import main as cli
from asr_trainer.testing.tones import write_tone_corpus
from asr_trainer.train.estimate import (DECODE_SECONDS_PER_SYSTEM, Machine, Workload, estimate_lines, eta_seconds,
                                        format_duration, strategy_speedup)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.tdnn_lstm.conv_dim=8", "model.tdnn_lstm.lstm_dim=8", "model.tdnn_lstm.num_lstm_layers=1",
        "data.max_duration=1.5", "num_threads=1", "progress_bar=false"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tone_corpus(tmp_path_factory.mktemp("estimate"), {"train": 16, "dev": 2})


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (45.4, "45 s"), (89, "89 s"), (420, "7 min"),
                                           (3599, "1 h 0 min"), (4441, "1 h 14 min")])
def test_durations_read_as_people_write_them(seconds, text):
    assert format_duration(seconds) == text


def test_strategy_runs_split_the_work_over_gpus_or_share_the_cores():
    assert strategy_speedup(4, Machine("cuda", cores=16, threads=2)) == 4.0  # a GPU per worker
    assert strategy_speedup(4, Machine("cpu", cores=2, threads=2)) == 1.0  # 4 one-thread workers on 2 cores
    assert strategy_speedup(4, Machine("cpu", cores=16, threads=2)) == 2.0  # 4 cores against the baseline's 2
    assert strategy_speedup(4, Machine("cpu", cores=16, threads=0)) == 0.25  # threads 0: the baseline takes all


def test_the_estimate_adds_baseline_strategy_runs_and_decoding():
    lines = estimate_lines(audio_s=600.0, epochs=10, rtf=100.0, work=Workload(1, (4, 4, 8), decodes=4),
                           machine=Machine("cuda", cores=8, threads=2))
    run = 10 * 600.0 / 100.0  # 60 s a 1-worker run
    total = run + 2 * run / 4 + run / 8 + 4 * DECODE_SECONDS_PER_SYSTEM
    assert lines[-1] == f"estimated: {format_duration(total)} for the stages left"
    assert any("2 strategy run(s) at 4 workers: 15 s each" in line for line in lines)


def test_time_left_is_the_mean_epoch_times_the_epochs_left():
    assert eta_seconds([10.0, 20.0], 3) == 45.0
    assert eta_seconds([], 3) == 0.0


def test_estimate_command_probes_the_runs_own_data(corpus, capsys):
    args = ["estimate", "--config", str(ROOT / "conf/train.yaml"), "--lang-dir", str(corpus / "lang"),
            "--cuts-dir", str(corpus / "cuts"), "--strategy-workers", "2 2", "--decodes", "3", "--probe-steps", "2",
            "num_epochs=3", *TINY]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert "3 epochs x" in out and "2 strategy run(s) at 2 workers" in out and "decoding: 3 system(s)" in out
    assert out.splitlines()[-1].startswith("estimated: ")


def test_estimate_command_refuses_bad_worker_lists(corpus, capsys):
    args = ["estimate", "--lang-dir", str(corpus / "lang"), "--cuts-dir", str(corpus / "cuts"),
            "--strategy-workers", "2 x"]
    assert cli(args) == 2 and "--strategy-workers takes positive integers" in capsys.readouterr().err


def test_each_epoch_logs_the_time_left(corpus, tmp_path):
    exp = tmp_path / "exp"
    args = ["train", "--config", str(ROOT / "conf/train.yaml"), "--exp-dir", str(exp), "--lang-dir",
            str(corpus / "lang"), "--cuts-dir", str(corpus / "cuts"), "num_epochs=2", *TINY]
    assert cli(args) == 0
    lines = [line for line in (exp / "log" / "log-train.txt").read_text().splitlines() if " left" in line]
    assert len(lines) == 2 and "epoch 1/2:" in lines[0] and "epoch 2/2:" in lines[1], lines
    assert lines[1].endswith("about 0 s left")
