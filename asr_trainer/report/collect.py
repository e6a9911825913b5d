"""Collect experiment directories into report rows: WER, paired relative increase, bytes, speed-up.

An experiment is a directory ``<exp_root>/<name>/`` holding the decode driver's
``recogs-<set>-<method>.txt`` (see :mod:`asr_trainer.decode.driver`) and, for every
run but the single-worker baseline, the sync code's ``sync_stats.json`` (see
:mod:`asr_trainer.sync.stats`; a missing file means strategy ``none``, 1 worker).

What each row holds, and where it comes from:

* ``test_wer`` (percent): MEASURED, from the recogs file.
* ``rel``: relative WER increase over the baseline, percent, with a PAIRED
  per-utterance bootstrap CI (:func:`asr_trainer.report.bootstrap.relative_increase_ci`);
  utterances are paired by cut id and both systems must hold exactly the same cut ids.
* ``vs_dense``: relative WER change over the dense all-reduce run with the same number of
  workers (when the study has one), the same paired bootstrap: the cost of compressing the
  synchronisation alone, with the cost of the large effective batch taken out.
* ``bytes_per_step`` / ``bytes_received_per_step``: MEASURED message sizes per worker per step.
* ``time_split``: MEASURED seconds per step on the machine that trained (compute,
  encode_decode, communicate), as written in ``sync_stats.json``.
* ``training``: MEASURED optimizer updates and dev-loss curve, from ``train-summary.json``
  (:mod:`asr_trainer.report.training`).
* ``modeled_speedup``: MODELLED by :mod:`asr_trainer.report.cost_model` on the GPU cluster of a
  :class:`~asr_trainer.report.cost_model.Scenario` (see :func:`modeled_speedup`): compute and
  GTC encode/decode of the scenario's GPU, the run's measured bytes, density and block syncs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import kaldialign
import numpy as np
import torch
import yaml

from asr_trainer import checkpoint as ckpt
from asr_trainer.errors import UserError
from asr_trainer.report.bootstrap import Interval, relative_increase_ci
from asr_trainer.report.cost_model import STRATEGIES, Scenario, load_sync_stats, speedup, workload_from_sync_stats
from asr_trainer.report.training import TrainingCurve, load_training
from asr_trainer.report.wer import Utterance, read_recogs

log = logging.getLogger(__name__)

SYNC_STATS = "sync_stats.json"
BASELINE_STRATEGY = "none"
STRATEGY_ORDER = (BASELINE_STRATEGY,) + STRATEGIES  # row order in tables and plot legends


@dataclass(frozen=True)
class ReportConfig:
    """What to report: the test set and decoding method, and the bootstrap settings."""

    set_name: str = "test"
    method: str = "hlg"
    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.n_resamples < 1:
            raise ValueError(f"n_resamples must be >= 1, got {self.n_resamples}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")

    def recogs_name(self) -> str:
        """The decode driver's file name, ``recogs-<set>-<method>.txt``."""
        return f"recogs-{self.set_name}-{self.method}.txt"


@dataclass(frozen=True)
class Row:
    """One experiment. Percentages in percent, bytes per worker per step, seconds per step."""

    name: str
    strategy: str
    workers: int
    group_size: int
    num_utts: int
    ref_words: int
    test_wer: float
    rel: Interval  # relative WER increase vs the baseline (the baseline itself: 0, [0, 0])
    bytes_per_step: float
    bytes_received_per_step: float
    gtc_density: float | None
    time_split: dict[str, float]  # measured: compute, encode_decode, communicate
    modeled_speedup: float
    is_baseline: bool = False
    vs_dense: Interval | None = None  # relative WER change vs the all-reduce run of the same N, if any
    error_kinds: tuple[int, int, int] = (0, 0, 0)  # test insertions, deletions, substitutions
    training: TrainingCurve = TrainingCurve()  # updates and dev losses per epoch


# ---------------------------------------------------------------- reading one experiment
def experiment_dirs(exp_root: Path, cfg: ReportConfig) -> list[Path]:
    """Sub-directories of ``exp_root`` that hold a recogs file or a ``sync_stats.json``, sorted.

    Directories holding neither (a lang dir, a previous report) are skipped and logged.
    """
    exp_root = Path(exp_root)
    if not exp_root.is_dir():
        raise UserError(f"experiment root {exp_root} is not a directory")
    found, skipped = [], []
    for d in sorted(p for p in exp_root.iterdir() if p.is_dir()):
        (found if (d / cfg.recogs_name()).is_file() or (d / SYNC_STATS).is_file() else skipped).append(d)
    if skipped:
        log.info("skipped %d directories without %s or %s: %s", len(skipped), cfg.recogs_name(), SYNC_STATS,
                 ", ".join(p.name for p in skipped))
    return found


def load_recogs(exp_dir: Path, cfg: ReportConfig) -> list[Utterance]:
    """The experiment's decoded ``cfg.set_name`` with ``cfg.method``; a clear error when it was not decoded."""
    path = Path(exp_dir) / cfg.recogs_name()
    if not path.is_file():
        raise UserError(f"{exp_dir.name}: no {path.name} in {exp_dir}; run `asr-trainer decode "
                        f"--exp-dir {exp_dir} --method {cfg.method}` first")
    utts = read_recogs(path)
    if not utts:
        raise UserError(f"{path} holds no utterances")
    return utts


def load_stats(exp_dir: Path) -> dict:
    """``sync_stats.json`` of the experiment; missing means the single-worker baseline (``none``, 1 worker)."""
    path = Path(exp_dir) / SYNC_STATS
    if not path.is_file():
        return {"strategy": BASELINE_STRATEGY, "workers": 1, "group_size": 1,
                "bytes_sent_per_worker_per_step": 0.0, "bytes_received_per_worker_per_step": 0.0,
                "gtc_density": None, "time_per_step_s": {}, "steps": 0}
    stats = load_sync_stats(path)
    if stats["strategy"] not in STRATEGY_ORDER:
        raise UserError(f"{path}: unknown strategy {stats['strategy']!r}; known: {', '.join(STRATEGY_ORDER)}")
    return stats


# ---------------------------------------------------------------- pairing and the relative increase
class UttErrors(NamedTuple):
    """One test utterance's edit distance to its reference (kaldialign), and the reference."""

    errors: int
    ref_words: int
    ref: tuple[str, ...]
    ins: int = 0
    dels: int = 0
    subs: int = 0


def utterance_errors(utts: list[Utterance]) -> dict[str, UttErrors]:
    """``{cut_id: UttErrors}`` with kaldialign's edit distance (sub + del + ins)."""
    out: dict[str, UttErrors] = {}
    for cut_id, ref, hyp in utts:
        if cut_id in out:
            raise UserError(f"cut {cut_id} is decoded twice")
        d = kaldialign.edit_distance(ref, hyp)
        out[cut_id] = UttErrors(int(d["total"]), len(ref), tuple(ref), int(d["ins"]), int(d["del"]), int(d["sub"]))
    return out


def _ids(ids: list[str], limit: int = 5) -> str:
    return ", ".join(ids[:limit]) + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")


def paired_arrays(base: dict, system: dict, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(errors_system, errors_base, ref_lens)``, shape ``(n_utts,)``, paired by cut id (baseline order).

    ``base`` / ``system`` come from :func:`utterance_errors`. A cut present in one
    system only, or with different reference words, is a :class:`UserError`.
    """
    missing = sorted(set(base) - set(system))
    extra = sorted(set(system) - set(base))
    if missing or extra:
        parts = ([f"{len(missing)} test utterances of the baseline are missing from {name}: {_ids(missing)}"]
                 if missing else [])
        parts += [f"{name} has {len(extra)} utterances the baseline lacks: {_ids(extra)}"] if extra else []
        raise UserError("; ".join(parts) + " (decode every system on the same test set)")
    differ = sorted(c for c in base if base[c][2] != system[c][2])
    if differ:
        raise UserError(f"{name}: reference words differ from the baseline's for {_ids(differ)}")
    ids = list(base)
    return (np.array([system[c][0] for c in ids], float), np.array([base[c][0] for c in ids], float),
            np.array([base[c][1] for c in ids], float))


def relative_increase(base: dict, system: dict, name: str, cfg: ReportConfig) -> Interval:
    """Relative WER increase (percent) of ``system`` over ``base``, paired bootstrap CI."""
    es, eb, n = paired_arrays(base, system, name)
    return relative_increase_ci(es, eb, n, n_resamples=cfg.n_resamples, seed=cfg.seed, level=cfg.level)


# ---------------------------------------------------------------- modelled speed-up
SCENARIO_FIELDS = ("pad_ratio", "bmuf_update_s", "bmuf_block", "padded_allgather", "decode_s_per_element")


def model_params(exp_dir: Path, stats: dict) -> int:
    """Parameters of the experiment's model: ``params`` of ``sync_stats.json`` when written there,
    else counted in the newest ``epoch-N.pt`` (floating tensors of the model state, BatchNorm
    running statistics excluded)."""
    if stats.get("params"):
        return int(stats["params"])
    paths = ckpt.list_numbered(Path(exp_dir), ckpt.EPOCH_RE)
    if not paths:
        raise UserError(f"{exp_dir.name}: cannot model its speed-up: no 'params' in {SYNC_STATS} and no "
                        f"epoch-N.pt checkpoint in {exp_dir} to count the model's parameters")
    tensors = ckpt.load(paths[-1], ckpt.ModelFile).model
    return sum(t.numel() for k, t in tensors.items() if torch.is_floating_point(t) and "running_" not in k)


def modeled_speedup(exp_dir: Path, stats: dict, scenario: Scenario) -> float:
    """Speed-up of this run's training at its N workers on ``scenario``'s GPU cluster (MODELLED).

    Inputs of :func:`asr_trainer.report.cost_model.speedup`: from the experiment, the model's
    parameter count (dense messages of 4 bytes each), its per-worker batch (``train.yaml``), the
    measured GTC density, bytes per sent element (measured payload / (density * params)), group
    size and BMUF block; from the scenario, the links and topology, ``SCENARIO_FIELDS`` and the
    GPU (:class:`~asr_trainer.report.gpu_compute.GpuCompute`), which gives the compute per worker
    step and the GTC encode/decode time. The step times the simulation measured (on CPU: about
    half a second a worker step) are NOT used: they describe the machine that simulated, not a
    GPU of the cluster. One worker: 1.
    """
    strategy, n = stats["strategy"], int(stats["workers"])
    if n == 1:
        return 1.0
    if strategy == BASELINE_STRATEGY:
        raise UserError(f"{exp_dir.name}: strategy '{BASELINE_STRATEGY}' with {n} workers makes no sense")
    params = model_params(exp_dir, stats)
    overrides = {k: getattr(scenario.workload, k) for k in SCENARIO_FIELDS}
    gtc = strategy in ("gtc", "hybrid")
    overrides.update(compute_s=scenario.gpu.compute_s(params, batch_seconds(exp_dir)),
                     encode_s=scenario.gpu.gtc_round_s(params) if gtc else 0.0)
    payload, density = stats.get("payload_bytes_per_worker_per_step"), stats.get("gtc_density")
    if gtc and payload and density:
        overrides["bytes_per_element"] = float(payload) / (float(density) * params)
    if stats.get("block_size"):
        overrides["bmuf_block"] = int(stats["block_size"])
    workload = workload_from_sync_stats(stats, params, **overrides)
    try:
        return speedup(strategy, n, workload, scenario.topology())
    except ValueError as e:
        raise UserError(f"{exp_dir.name}: cannot model its speed-up: {e}") from None


def batch_seconds(exp_dir: Path) -> float:
    """Seconds of audio in one worker's minibatch: ``data.max_duration`` of the run's ``train.yaml``
    (0, logged, when the run has none: the GPU's launch-bound floor then gives its compute)."""
    path = Path(exp_dir) / "train.yaml"
    if not path.is_file():
        log.info("%s: no train.yaml; its compute per step is the GPU's floor", Path(exp_dir).name)
        return 0.0
    try:
        return float(yaml.safe_load(path.read_text(encoding="utf-8"))["data"]["max_duration"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: no data.max_duration ({e})") from None


# ---------------------------------------------------------------- rows
def make_row(exp_dir: Path, utts: dict, stats: dict, rel: Interval, scenario: Scenario,
             is_baseline: bool = False) -> Row:
    """The report row of one experiment; ``utts`` from :func:`utterance_errors`."""
    errors = sum(u.errors for u in utts.values())
    words = sum(u.ref_words for u in utts.values())
    if words == 0:
        raise UserError(f"{exp_dir.name}: the references have no words")
    return Row(
        name=exp_dir.name, strategy=stats["strategy"], workers=int(stats["workers"]),
        group_size=int(stats.get("group_size") or 1), num_utts=len(utts), ref_words=words,
        test_wer=100.0 * errors / words, rel=rel,
        error_kinds=tuple(sum(getattr(u, k) for u in utts.values()) for k in ("ins", "dels", "subs")),
        bytes_per_step=float(stats["bytes_sent_per_worker_per_step"]),
        bytes_received_per_step=float(stats["bytes_received_per_worker_per_step"]),
        gtc_density=stats.get("gtc_density"),
        time_split={k: float(v) for k, v in stats["time_per_step_s"].items()},
        modeled_speedup=1.0 if is_baseline else modeled_speedup(exp_dir, stats, scenario),
        is_baseline=is_baseline, training=load_training(exp_dir))


def collect_rows(exp_root: Path, baseline: str, cfg: ReportConfig, scenario: Scenario) -> list[Row]:
    """One :class:`Row` per experiment under ``exp_root``, the baseline first, then by strategy and workers."""
    dirs = {d.name: d for d in experiment_dirs(exp_root, cfg)}
    if baseline not in dirs:
        raise UserError(f"baseline experiment {baseline!r} not found under {exp_root} (need "
                        f"{exp_root}/{baseline}/{cfg.recogs_name()}); found: {', '.join(dirs) or 'none'}")
    base_stats = load_stats(dirs[baseline])
    if int(base_stats["workers"]) != 1:
        raise UserError(f"baseline {baseline!r} ran with {base_stats['workers']} workers; it must have 1")
    base = utterance_errors(load_recogs(dirs[baseline], cfg))
    rows = [make_row(dirs[baseline], base, base_stats, Interval(0.0, 0.0, 0.0, cfg.level, 0), scenario, True)]
    systems = {}
    for name, d in dirs.items():
        if name == baseline:
            continue
        systems[name] = utterance_errors(load_recogs(d, cfg))
        rows.append(make_row(d, systems[name], load_stats(d), relative_increase(base, systems[name], name, cfg),
                             scenario))
    rows[1:] = sorted(rows[1:], key=lambda r: (STRATEGY_ORDER.index(r.strategy), r.workers, r.group_size, r.name))
    return against_dense(rows, systems, cfg)


def against_dense(rows: list[Row], systems: dict[str, dict], cfg: ReportConfig) -> list[Row]:
    """``rows`` with ``vs_dense`` set on every compressed run (gtc, bmuf, hybrid) that has an all-reduce
    run of the same N among them (the first by name where there are several); ``systems``: name ->
    :func:`utterance_errors`."""
    dense: dict[int, Row] = {}
    for r in rows:
        if r.strategy == "allreduce":
            dense.setdefault(r.workers, r)
    out = []
    for r in rows:
        ref = dense.get(r.workers)
        if ref is not None and r.strategy not in ("allreduce", BASELINE_STRATEGY):
            r = replace(r, vs_dense=relative_increase(systems[ref.name], systems[r.name], r.name, cfg))
        out.append(r)
    return out
