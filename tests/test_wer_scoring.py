"""WER against hand-computed edit distances; recogs round trip; written files."""

import json

from asr_trainer.report.wer import alignment_line, compute_wer, read_recogs, score_set, write_recogs

RESULTS = [
    # ref, hyp: hand-counted (sub, del, ins)
    ("u1", ["A", "B", "C", "D"], ["A", "X", "C", "D"]),       # 1 sub
    ("u2", ["A", "B", "C"], ["A", "C"]),                      # 1 del
    ("u3", ["A", "B"], ["A", "B", "B", "Z"]),                 # 2 ins
    ("u4", ["THE", "CAT", "SAT"], ["THE", "CAT", "SAT"]),     # 0
]


def test_counts_match_hand_computed_edit_distance():
    r = compute_wer(RESULTS, replications=0)
    assert (r.subs, r.dels, r.ins) == (1, 1, 2)
    assert r.errors == 4 and r.ref_words == 12
    assert abs(r.wer - 100 * 4 / 12) < 1e-9


def test_bootstrap_ci_brackets_the_wer():
    r = compute_wer(RESULTS * 5, replications=500, seed=1)
    assert r.ci95[0] <= r.wer <= r.ci95[1]
    assert r.ci95[1] > r.ci95[0]


def test_recogs_round_trip_in_icefall_format(tmp_path):
    path = tmp_path / "recogs-x.txt"
    write_recogs(path, RESULTS + [("u5", ["O'BRIEN"], [])])
    assert path.read_text().splitlines()[0] == "u1:\tref=['A', 'B', 'C', 'D']"
    back = read_recogs(path)
    assert back == sorted(RESULTS + [("u5", ["O'BRIEN"], [])])


def test_alignment_line_marks_errors():
    assert alignment_line(["A", "B", "C"], ["A", "X"]) == "A (B->X) (C->*)"


def test_score_set_writes_files(tmp_path):
    r = score_set(tmp_path, "test-greedy", RESULTS, {"u1": "s1", "u2": "s1", "u3": "s2"}, replications=100)
    data = json.loads((tmp_path / "wer-test-greedy.json").read_text())
    assert data["errors"] == r.errors == 4 and data["del"] == 1 and data["ref_words"] == 12
    errs = (tmp_path / "errs-test-greedy.txt").read_text()
    assert "s1\t2\t7\t2\t28.57" in errs and "unknown\t1\t3\t0\t0.00" in errs
    assert "4.0" not in (tmp_path / "wer-summary-test-greedy.txt").read_text().split("\n")[0]
