"""Time estimates: of a recipe's training and decoding before they start, and of a run's epochs left.

A run trains ``epochs x train audio`` seconds of audio at the real-time factor a short probe measured
(:func:`asr_trainer.train.throughput.probe_real_time_factor`). A strategy run of ``N`` workers trains the same
audio per epoch as the baseline, split over its workers: on cuda each worker has a GPU of its own, so it
takes ``1/N`` of the baseline's time; on cpu the workers (one thread each) share the cores, so it is as
fast as the cores they use against the baseline's threads. Communication is left out (under a few percent
at the recipe's sizes); decoding is counted at :data:`DECODE_SECONDS_PER_SYSTEM`.
"""

from __future__ import annotations

from dataclasses import dataclass

DECODE_SECONDS_PER_SYSTEM = 60.0  # greedy + HLG of dev and test: the recipe's target, not measured here


@dataclass(frozen=True)
class Workload:
    """What a recipe is about to run: its baseline (0 or 1), the worker count of every strategy run to train,
    and the systems to decode."""

    baseline_runs: int
    strategy_workers: tuple[int, ...]
    decodes: int


@dataclass(frozen=True)
class Machine:
    """Where it runs: ``device`` (cpu | cuda), CPU ``cores``, the baseline's ``threads`` (0: every core)."""

    device: str
    cores: int
    threads: int


def strategy_speedup(workers: int, machine: Machine) -> float:
    """How much faster a strategy run of ``workers`` trains an epoch than the 1-worker baseline (see module)."""
    if machine.device.startswith("cuda"):
        return float(workers)
    baseline_cores = min(machine.threads or machine.cores, machine.cores)
    return min(workers, machine.cores) / baseline_cores


def estimate_lines(audio_s: float, epochs: int, rtf: float, work: Workload, machine: Machine) -> list[str]:
    """The console lines of the estimate: one per part, then ``estimated: <total>``."""
    run_s = epochs * audio_s / rtf
    lines = [f"training: {epochs} epochs x {format_duration(audio_s)} of audio at {rtf:.0f}x real time "
             f"(probe on {machine.device}): {format_duration(run_s)} a 1-worker run"]
    total = work.baseline_runs * run_s
    if work.baseline_runs:
        lines.append(f"  baseline: {format_duration(run_s)}")
    for n in sorted(set(work.strategy_workers)):
        runs = work.strategy_workers.count(n)
        each = run_s / strategy_speedup(n, machine)
        total += runs * each
        lines.append(f"  {runs} strategy run(s) at {n} workers: {format_duration(each)} each")
    if work.decodes:
        total += work.decodes * DECODE_SECONDS_PER_SYSTEM
        lines.append(f"  decoding: {work.decodes} system(s) x ~{format_duration(DECODE_SECONDS_PER_SYSTEM)} (assumed)")
    lines.append(f"estimated: {format_duration(total)} for the stages left")
    return lines


def eta_seconds(epoch_seconds: list[float], epochs_left: int) -> float:
    """The time the ``epochs_left`` epochs still to run take at the mean of ``epoch_seconds`` so far."""
    return sum(epoch_seconds) / len(epoch_seconds) * epochs_left if epoch_seconds else 0.0


def format_duration(seconds: float) -> str:
    """``45 s``, ``7 min``, ``1 h 14 min``: a duration for people."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
