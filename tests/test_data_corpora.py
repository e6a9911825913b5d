"""User corpora (Kaldi data dirs, LibriSpeech layout) and the feature stage, including bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from lhotse import load_manifest

from asr_trainer.bin.main import main
from asr_trainer.data.features import FeatureConfig, compute_fbank
from asr_trainer.data.kaldi_dir import prepare_kaldi_dirs
from asr_trainer.data.librispeech import prepare_librispeech
from asr_trainer.errors import UserError


def make_kaldi_dir(root: Path, tone_writer, bad: bool) -> Path:
    """A Kaldi data dir of 3 good utterances; with ``bad``, one of each kind of bad entry too."""
    wav, text, utt2spk = [], [], []
    for i in range(3):
        path = tone_writer(root / "audio" / f"u{i}.wav", 0.6 + 0.1 * i, 300 + 50 * i)
        wav.append(f"u{i} {path}")
        text.append(f"u{i} hello, world number {i}!")
        utt2spk.append(f"u{i} spk{i % 2}")
    if bad:
        corrupt = root / "audio" / "corrupt.wav"
        corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
        empty = tone_writer(root / "audio" / "empty.wav", 0.0)
        wav += [f"corrupt {corrupt}", f"missing {root / 'nope.wav'}", f"empty {empty}", f"notext {wav[0].split()[1]}"]
        text += ["corrupt A B", "missing A B", "empty A B", "notext   "]
        utt2spk += ["corrupt s", "missing s", "empty s", "notext s"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "wav.scp").write_text("\n".join(wav) + "\n")
    (root / "text").write_bytes(("\n".join(text) + "\n").encode() + b"latin \xe9\xe8 caf\xe9\n")
    (root / "utt2spk").write_text("\n".join(utt2spk) + "\n")
    return root


@pytest.fixture
def kaldi_corpus(tmp_path, tone_writer) -> Path:
    for split in ("train", "dev", "test"):
        make_kaldi_dir(tmp_path / "corpus" / split, tone_writer, bad=(split == "train"))
    return tmp_path / "corpus"


def test_kaldi_dir_skips_bad_entries_and_counts_them(kaldi_corpus, tmp_path, caplog):
    manifests = prepare_kaldi_dirs(kaldi_corpus, tmp_path / "manifests")
    train = manifests["train"]["supervisions"]
    assert sorted(s.id for s in train) == ["u0", "u1", "u2"]
    assert train["u0"].text == "HELLO WORLD NUMBER 0"
    log = caplog.text
    assert "missing or unreadable audio" in log and "zero-length audio" in log
    assert "empty transcript" in log and "line not UTF-8" in log
    assert (tmp_path / "manifests" / "kaldi_recordings_test.jsonl.gz").is_file()


def test_kaldi_dir_with_missing_files_is_a_clear_error(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / split).mkdir()
    with pytest.raises(UserError, match="lacks wav.scp, text, utt2spk"):
        prepare_kaldi_dirs(tmp_path, tmp_path / "out")
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="missing dev, test"):
        prepare_kaldi_dirs(tmp_path / "only_train", tmp_path / "out")


def test_features_skip_audio_broken_after_preparation(kaldi_corpus, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    manifests = tmp_path / "manifests"
    prepare_kaldi_dirs(kaldi_corpus, manifests)
    (kaldi_corpus / "dev" / "audio" / "u1.wav").write_bytes(b"truncated")
    cfg = FeatureConfig(num_jobs=2, speed_perturb=True, max_duration=0.75)
    cuts = compute_fbank(manifests, "kaldi", ["train", "dev"], tmp_path / "fbank", cfg)
    dev_ids = sorted(c.id for c in cuts["dev"])
    assert dev_ids == ["u0"]  # u1 unreadable, u2 (0.8 s) over max_duration
    assert "unreadable audio" in caplog.text and "longer than max_duration" in caplog.text
    train = cuts["train"]
    assert len(train) == 3 * 2  # u0, u1 (u2 too long) x speeds 1.0, 0.9, 1.1; the 1.1x u2 fits
    feats = train[0].load_features()
    assert feats.shape[1] == 80 and abs(feats.shape[0] - train[0].num_frames) == 0
    again = compute_fbank(manifests, "kaldi", ["dev"], tmp_path / "fbank", cfg)
    assert [c.id for c in again["dev"]] == dev_ids
    assert "already done" in caplog.text


def test_librispeech_layout_and_mini_speaker_split(tmp_path, tone_writer):
    root = tmp_path / "LibriSpeech"
    for part, speakers in (("train-clean-5", ("19", "26")), ("dev-clean-2", ("84", "174", "251", "422"))):
        for spk in speakers:
            chapter = root / part / spk / "100"
            lines = []
            for i in range(2):
                utt = f"{spk}-100-{i:04d}"
                tone_writer(chapter / f"{utt}.flac", 0.5, 200 + i * 30, fmt="FLAC")
                lines.append(f"{utt} SOME WORDS {i}")
            (chapter / f"{spk}-100.trans.txt").write_text("\n".join(lines) + "\n")
    out = prepare_librispeech(tmp_path, tmp_path / "m", "mini_librispeech")
    dev_spk = {s.speaker for s in out["dev"]["supervisions"]}
    test_spk = {s.speaker for s in out["test"]["supervisions"]}
    assert dev_spk and test_spk and not dev_spk & test_spk
    assert dev_spk | test_spk == {"84", "174", "251", "422"}
    assert len(out["train"]["supervisions"]) == 4
    loaded = load_manifest(tmp_path / "m" / "mini_librispeech_supervisions_train.jsonl.gz")
    assert loaded[0].text.startswith("SOME WORDS")


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    code = main(["prepare", "--corpus", "kaldi", "--corpus-dir", str(tmp_path / "nope"),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "corpus directory not found" in err and "Traceback" not in err


def test_a_split_with_only_bad_entries_is_a_one_line_error(kaldi_corpus, tmp_path, capsys):
    train = kaldi_corpus / "train"
    lines = (train / "wav.scp").read_text().splitlines()
    (train / "wav.scp").write_text("".join(f"{line}\n" for line in lines if not line.startswith("u")))  # bad ones only
    code = main(["prepare", "--corpus", "kaldi", "--corpus-dir", str(kaldi_corpus), "--output-dir",
                 str(tmp_path / "manifests")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("asr-trainer prepare: error: kaldi/train: no usable utterance left "
                                            "(every entry was skipped, see the warnings above): check the corpus")
    assert not (tmp_path / "manifests" / "kaldi_recordings_train.jsonl.gz").exists()
