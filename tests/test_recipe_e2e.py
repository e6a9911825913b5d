"""The whole recipe, end to end, on the quick synthetic corpus (2 epochs), in a temporary directory.

Runs ``./run.sh --profile quick`` exactly as a user would (all stages: data, features, lang, baseline,
decode, GTC / BMUF / hybrid as 4 torchrun processes over gloo, decode, report), then checks what a user
relies on: valid manifests, finite WERs with confidence intervals for every strategy, and that a second
call skips the finished stages.
"""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import pytest
from lhotse import load_manifest, validate_recordings_and_supervisions

ROOT = Path(__file__).resolve().parents[1]


def run_recipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = ["bash", str(ROOT / "run.sh"), "--profile", "quick", "--data-root", str(tmp_path / "data"),
           "--exp-root", str(tmp_path / "exp"), "--epochs", "2", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)


@pytest.mark.slow
def test_quick_recipe_end_to_end(tmp_path):
    proc = run_recipe(tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    manifests = tmp_path / "data" / "synth_quick" / "manifests"
    for split in ("train", "dev", "test"):
        recordings = load_manifest(manifests / f"synth_recordings_{split}.jsonl.gz")
        supervisions = load_manifest(manifests / f"synth_supervisions_{split}.jsonl.gz")
        validate_recordings_and_supervisions(recordings, supervisions)
    with open(tmp_path / "exp" / "synth_quick" / "report" / "results.csv") as f:
        rows = {r["strategy"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"none", "gtc", "bmuf", "hybrid"}
    assert rows["none"]["workers"] == "1" and rows["gtc"]["workers"] == "4"
    assert rows["hybrid"]["group_size"] == "2"
    for r in rows.values():
        wer, lo, hi = (float(r[k]) for k in ("test_wer", "ci95_low_pct", "ci95_high_pct"))
        assert 0 < wer <= 100 and math.isfinite(lo) and math.isfinite(hi) and lo <= hi
    assert float(rows["gtc"]["bytes_per_step"]) > 0

    again = run_recipe(tmp_path, "--stop-stage", "6")
    assert again.returncode == 0, again.stderr[-3000:]
    for n in range(7):
        assert f"stage {n} (" in again.stderr and "already done" in again.stderr
