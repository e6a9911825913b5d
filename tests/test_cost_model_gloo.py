"""Loopback gloo collectives on this machine: the model (fitted on all_reduce at one process
count) predicts all_reduce / all_gather / broadcast at other process counts and sizes.

The machine is small and shared, so timings are best-of-trials, the comparison is made in
the bandwidth-bound regime (MBs a rank), and a failing comparison is measured once more
before it counts (up to two re-measurements). Criterion: median |error| <= 30% and every case within a factor of 2.5. Not every case is
within 30%: all_gather at p=3 (8 MB) measures faster than the model (+60..+100% error, in
every run so far) and the 2-process broadcast swings -50..+20% with the machine's load.
"""

import statistics

import pytest

from asr_trainer.report.collectives import fit_loopback_model, measure_collectives, usable_cores

MB = 1 << 20
# (world, ops) validated at VALIDATE_BYTES; all_reduce at p <= cores is a documented gap
CASES = [(2, ("all_gather", "broadcast")), (3, ("all_reduce", "all_gather", "broadcast")),
         (4, ("all_gather", "broadcast")), (8, ("all_reduce", "all_gather", "broadcast"))]
VALIDATE_BYTES = 8 * MB


def _errors():
    cores = usable_cores()
    small, large = measure_collectives([4], [4096, 16 * MB], ops=["all_reduce"], repeats=3)
    model = fit_loopback_model(small, large, cores)
    errs = {}
    for world, ops in CASES:
        for t in measure_collectives([world], [VALIDATE_BYTES], ops=ops, repeats=2, trials=3):
            errs[(t.op, world)] = (model.predict(t.op, world, t.size_bytes) - t.seconds) / t.seconds
    return errs


def _ok(errs):
    rel = [abs(e) for e in errs.values()]
    return statistics.median(rel) <= 0.30 and all(-0.6 <= e <= 1.5 for e in errs.values())


@pytest.mark.slow
def test_loopback_model_predicts_measured_collectives():
    errs = _errors()
    for _ in range(2):  # re-measure (at most twice): other work on the machine only adds time
        if _ok(errs):
            break
        errs = _errors()
    report = ", ".join(f"{op}@{p}: {100 * e:+.0f}%" for (op, p), e in sorted(errs.items()))
    assert _ok(errs), f"model vs measured: {report}"
