"""The conf/ defaults ship with the package: ``pip install .`` into a fresh venv outside the repository
gives an ``asr-trainer`` whose defaults (conf/train.yaml, conf/model/*, conf/sync/*) work from any directory."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asr_trainer.default_conf import find_config, shipped_conf_dir
from asr_trainer.testing.tones import write_tone_corpus

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "asr_trainer", "conf")
PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
WHERE = "import asr_trainer.default_conf as d; print(d.__file__); print(d.shipped_conf_dir())"


def test_find_config_prefers_the_working_directory_then_the_shipped_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config("conf/train.yaml") == shipped_conf_dir() / "train.yaml"
    assert find_config("conf/sync/bmuf.yaml").is_file()
    assert find_config("conf/no-such.yaml") == Path("conf/no-such.yaml")  # reported missing by the caller
    assert find_config("elsewhere/train.yaml") == Path("elsewhere/train.yaml")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "train.yaml").write_text("num_epochs: 1\n")
    assert find_config("conf/train.yaml") == Path("conf/train.yaml")  # the recipe's editable copy wins


def _package_sources(dst: Path) -> Path:
    """A copy of what ``pip install .`` reads: pip builds in the source tree (build/, *.egg-info), and the
    repository is a shared work tree."""
    dst.mkdir()
    for name in PACKAGE_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, dst / name)
    return dst


def _fresh_venv(where: Path) -> Path:
    """A venv without pip whose python also sees this interpreter's site-packages (torch, pip, setuptools).

    ``python -m venv --system-site-packages`` from inside a venv would expose the base interpreter's
    packages, not this venv's; a .pth file naming them does (after the new venv's own site-packages)."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", PURELIB], check=True, capture_output=True,
                             text=True).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(purelib) / "main_env.pth").write_text("".join(f"{p}\n" for p in ours))
    return venv


def _run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_pip_install_outside_the_repository_then_help_and_a_tiny_training(tmp_path):
    src = _package_sources(tmp_path / "src")
    venv = _fresh_venv(tmp_path)
    python, trainer = venv / "bin" / "python", venv / "bin" / "asr-trainer"
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", src], tmp_path)
    work = tmp_path / "work"  # outside the repository: no conf/ here
    work.mkdir()
    where = _run([python, "-c", WHERE], work).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the installed package and its own conf/
    assert "--sync" in _run([trainer, "train", "--help"], work).stdout
    corpus = write_tone_corpus(tmp_path / "corpus", {"train": 12, "dev": 2})
    _run([trainer, "train", "--exp-dir", "exp", "--lang-dir", corpus / "lang", "--cuts-dir", corpus / "cuts",
          "--sync", "bmuf", "--simulate-workers", "2", "num_epochs=1", "progress_bar=false", "num_threads=1",
          "data.max_duration=1.5", "model.tdnn_lstm.conv_dim=8", "model.tdnn_lstm.lstm_dim=8",
          "model.tdnn_lstm.num_lstm_layers=1"], work)
    (epoch,) = json.loads((work / "exp" / "train-summary.json").read_text())["epochs"]
    assert epoch["steps"] > 0 and math.isfinite(epoch["valid_loss"])
    assert (work / "exp" / "epoch-1.pt").is_file()
    assert "optimizer_state: reset" in (work / "exp" / "sync.yaml").read_text()  # the shipped conf/sync/bmuf.yaml
    assert "lstm_dim: 8" in (work / "exp" / "model.yaml").read_text()  # conf/model/tdnn_lstm.yaml, overridden
