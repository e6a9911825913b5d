#!/usr/bin/env python3
"""Keep a study's results in the repository: every decoded run's record, without its checkpoints.

A study on 2 CPU cores spans several sittings, often on different machines, and its exp dir (GBs of
checkpoints) stays behind on each. What the report needs of a run is small: its settings, its training
summary, its sync statistics and its decoded test set (the paired bootstrap reads every utterance). This
copies exactly that, for every run of ``--study`` that is trained and decoded, into ``--out/<run>/``, plus
the study's ``plan.tsv`` and ``train-seconds.tsv`` into ``--out``:

    python recipes/scaling/local/save_results.py --study ~/asr-study/exp/synth_study/scaling \\
        --out recipes/scaling/results/synth_study/runs
    asr-trainer report --exp-root recipes/scaling/results/synth_study/runs --baseline baseline \\
        --set test --method hlg --out-dir recipes/scaling/results/synth_study

A later part of the study restores them into its study dir first (``cp -r OUT/. STUDY/``): the sentinels
come along, so the recipe skips those runs and stage 3 finds the baseline's settings. A part's ``plan.tsv``
holds only its own worker counts, so the study files are merged into the saved ones by their first column
(the worker count; the run name), a row of the study replacing the saved row of the same key.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# What a run's record holds: its settings, training and sync summaries, decoding results, sentinels.
RECORD = ("train.yaml", "model.yaml", "sync.yaml", "sync_stats.json", "train-summary.json", "decode-hlg.json",
          "wer-dev-hlg.json", "wer-test-hlg.json", "wer-summary-dev-hlg.txt", "wer-summary-test-hlg.txt",
          "recogs-test-hlg.txt", ".done", ".decoded-hlg")
STUDY_FILES = ("plan.tsv", "train-seconds.tsv")  # tab-separated, keyed by their first column


def decoded_runs(study: Path) -> list[Path]:
    """The run dirs of ``study`` that are trained and decoded (both sentinels), sorted by name."""
    return sorted(d for d in study.iterdir() if (d / ".done").is_file() and (d / ".decoded-hlg").is_file())


def save_run(run: Path, out: Path) -> list[str]:
    """Copy ``run``'s record into ``out/<run name>``; returns the names of the record files it lacks."""
    dest = out / run.name
    dest.mkdir(parents=True, exist_ok=True)
    missing = []
    for name in RECORD:
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
        else:
            missing.append(name)
    return missing


def merge_rows(study_file: Path, saved_file: Path) -> None:
    """Write into ``saved_file`` its rows updated by ``study_file``'s, keyed by the first tab-separated column:
    the saved rows in their order (replaced where the study has the key), then the study's new keys."""
    rows = {}
    for path in (saved_file, study_file):
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    rows[line.split("\t", 1)[0]] = line
    saved_file.write_text("".join(line + "\n" for line in rows.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="the study dir (exp/<tag>/<study>)")
    parser.add_argument("--out", type=Path, required=True, help="where the runs' records go (one dir per run)")
    args = parser.parse_args(argv)
    if not args.study.is_dir():
        print(f"save_results: no study dir {args.study}", file=sys.stderr)
        return 1
    runs = decoded_runs(args.study)
    if not runs:
        print(f"save_results: no run in {args.study} is trained and decoded yet", file=sys.stderr)
        return 1
    for run in runs:
        missing = save_run(run, args.out)
        lacks = f" (lacks {', '.join(missing)})" if missing else ""
        print(f"{run.name}: saved{lacks}")
    for name in STUDY_FILES:
        merge_rows(args.study / name, args.out / name)
    print(f"{len(runs)} run(s) saved in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
