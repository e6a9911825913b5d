"""Settings of the synchronisation strategies, one frozen dataclass per strategy.

Each lives in ``conf/sync/<name>.yaml`` whose ``name:`` picks the class::

    cfg = load_sync_config("conf/sync/hybrid.yaml", ["group_size=8", "bmuf.block_size=25"])

The defaults of the dataclasses are the settings measured best with Adam as the local
optimizer (README "The scaling study"), the same as the shipped YAML files (a test holds them
equal). Two settings are rules over the number of workers ``N``, resolved where ``N`` is known:
``block_momentum`` (:func:`block_momentum`) and the hybrid's ``group_size``
(:func:`hybrid_group_size`); :func:`asr_trainer.sync.strategy.build_strategy` checks them before
any training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence, Union

from asr_trainer.config import load_config, parse_override, read_yaml
from asr_trainer.errors import UserError


@dataclass(frozen=True)
class NoSyncConfig:
    """Every worker trains alone (``N = 1``: the single-worker baseline)."""

    name: Literal["none"] = "none"


@dataclass(frozen=True)
class AllReduceConfig:
    """Dense synchronous SGD: the mean gradient over all workers every step."""

    name: Literal["allreduce"] = "allreduce"


@dataclass(frozen=True)
class GtcConfig:
    """Gradient threshold compression (Strom 2015), see DESIGN.md section 1.

    ``threshold_on``: ``"update"`` (default, as in Strom 2015) accumulates each
    worker's local optimizer update (its own optimizer state, the shared LR) in the
    residual and adds the mean of the sent +/-tau vectors to the parameters; tau is
    in update units. ``"gradient"`` accumulates the local gradient and runs the mean
    of the sent vectors through the one shared optimizer (one optimizer state for
    all replicas; tau in gradient units). With Adam the update form trains much
    better: on the quick corpus, 4 workers, 12 epochs, dev loss 1.063 (update, tau
    3e-3, 5.6% density) against 1.281 (gradient, 10% density) and 1.034 for a dense
    all-reduce; Adam's per-element normalisation amplifies a sparse +/-tau gradient.
    ``target_density``: when set (default 0.01, the scaling study's 1%; ``None`` keeps tau fixed),
    each worker rescales its tau after every step by ``clamp((d / target) ** tau_adapt_rate, 1/2, 2)``,
    d its running density: ``d = (1 - s) * d + s * density`` over its messages, ``s =
    tau_adapt_smoothing`` (1: the last message's density alone); ``tau`` is then the start value.
    ``encoding``: ``"strom"`` (int32 index+sign, 32 bits per sent element) or
    ``"compact"`` (per message the smaller of varint-coded index gaps and a
    presence bitmap plus sign bits; see :mod:`asr_trainer.sync.codec`).
    """

    name: Literal["gtc"] = "gtc"
    tau: float = 3e-3
    threshold_on: Literal["gradient", "update"] = "update"
    target_density: Union[float, None] = 0.01
    tau_adapt_rate: float = 0.25
    tau_adapt_smoothing: float = 0.2
    encoding: Literal["strom", "compact"] = "compact"

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ValueError(f"gtc tau must be > 0, got {self.tau}")
        if self.target_density is not None and not 0 < self.target_density <= 1:
            raise ValueError(f"gtc target_density must be in (0, 1], got {self.target_density}")
        if not self.tau_adapt_rate > 0:
            raise ValueError(f"gtc tau_adapt_rate must be > 0, got {self.tau_adapt_rate}")
        if not 0 < self.tau_adapt_smoothing <= 1:
            raise ValueError(f"gtc tau_adapt_smoothing must be in (0, 1], got {self.tau_adapt_smoothing}")


@dataclass(frozen=True)
class BmufConfig:
    """Blockwise model-update filtering (Chen & Huo 2016), see DESIGN.md section 1.

    ``block_momentum``: eta, a number in [0, 1) or a rule over the ``M`` BMUF members (workers,
    or groups under the hybrid): ``sqrt`` (default) ``1 - 1/sqrt(M)``, ``linear`` ``1 - 1/M``
    (Chen & Huo's, made for local SGD; it diverged with Adam at 32 workers). ``block_lr``: zeta.
    ``nesterov``: restart local training from ``W_g + eta * Delta`` (else ``W_g``, the classic
    restart and the default: Nesterov restarts diverged with Adam in every setting measured).
    ``optimizer_state``: what happens to the local optimizers' state (momentum buffers, Adam
    moments) at each block sync: ``keep`` it, ``reset`` it (CNTK's BlockMomentumSGD; the default,
    the only setting that did not oscillate with Adam), or ``average`` it over the BMUF members like
    the model (the moment handling of BMUF-Adam, Chen, Ding & Huo 2020, as far as its abstract
    says; step counts are kept).
    ``warmup_steps``: plain all-reduce steps over all workers before the first block.
    """

    name: Literal["bmuf"] = "bmuf"
    block_size: int = 50
    block_momentum: Union[float, Literal["sqrt", "linear"]] = "sqrt"
    block_lr: float = 1.0
    nesterov: bool = False
    optimizer_state: Literal["keep", "reset", "average"] = "reset"
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"bmuf block_size must be >= 1, got {self.block_size}")
        numeric = isinstance(self.block_momentum, (int, float)) and 0 <= self.block_momentum < 1
        if self.block_momentum not in MOMENTUM_RULES and not numeric:
            raise ValueError(f"bmuf block_momentum must be in [0, 1), sqrt or linear, got {self.block_momentum}")
        if not self.block_lr > 0:
            raise ValueError(f"bmuf block_lr must be > 0, got {self.block_lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"bmuf warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.optimizer_state not in ("keep", "reset", "average"):
            raise ValueError(f"bmuf optimizer_state must be keep, reset or average, got {self.optimizer_state!r}")


@dataclass(frozen=True)
class HybridBmufConfig(BmufConfig):
    """The hybrid's BMUF tier: :class:`BmufConfig` with the local optimizer state kept by default.
    With GTC's update thresholding (the default) each worker's optimizer belongs to GTC, and the
    strategy refuses ``reset`` and ``average`` there (they need ``gtc.threshold_on=gradient``)."""

    optimizer_state: Literal["keep", "reset", "average"] = "keep"


@dataclass(frozen=True)
class HybridConfig:
    """GTC inside groups of ``group_size`` workers, BMUF across the groups.

    ``group_size``: a number dividing ``N``, or ``auto`` (default, :func:`hybrid_group_size`).
    """

    name: Literal["hybrid"] = "hybrid"
    group_size: Union[int, Literal["auto"]] = "auto"
    gtc: GtcConfig = field(default_factory=GtcConfig)
    bmuf: HybridBmufConfig = field(default_factory=HybridBmufConfig)

    def __post_init__(self) -> None:
        if self.group_size != "auto" and not (isinstance(self.group_size, int) and self.group_size >= 1):
            raise ValueError(f"hybrid group_size must be >= 1 or auto, got {self.group_size}")


SyncConfig = Union[NoSyncConfig, AllReduceConfig, GtcConfig, BmufConfig, HybridConfig]

MOMENTUM_RULES = ("sqrt", "linear")
AUTO_GROUP_MAX = 8  # GPUs of a node: GTC over the fast links inside a node, BMUF across nodes

CONFIG_CLASSES: dict[str, type] = {
    "none": NoSyncConfig,
    "allreduce": AllReduceConfig,
    "gtc": GtcConfig,
    "bmuf": BmufConfig,
    "hybrid": HybridConfig,
}


def block_momentum(rule: Union[float, str], members: int) -> float:
    """BMUF's eta for ``members`` BMUF members: ``rule`` itself when a number, else
    ``sqrt``: ``1 - 1/sqrt(M)``, ``linear``: ``1 - 1/M``."""
    if rule == "sqrt":
        return 1.0 - 1.0 / math.sqrt(members)
    if rule == "linear":
        return 1.0 - 1.0 / members
    return float(rule)


def hybrid_group_size(cfg: HybridConfig, world_size: int) -> int:
    """The hybrid's group size at ``world_size`` workers: ``cfg.group_size`` when a number, else
    (``auto``) the largest divisor of ``world_size`` up to ``min(8, world_size / 2)``: groups of a
    node's 8 GPUs at 16 workers and more, and at least two groups below (2 at 4 workers, 4 at 8),
    so that BMUF has members to filter; 1 (plain BMUF) at 2 or 3 workers."""
    if cfg.group_size != "auto":
        return cfg.group_size
    cap = max(1, min(AUTO_GROUP_MAX, world_size // 2))
    return max(g for g in range(1, cap + 1) if world_size % g == 0)


def workers_per_step(cfg: "SyncConfig", world_size: int) -> int:
    """Workers whose minibatches form one optimizer step after any warm-up: all ``world_size``
    under all-reduce and GTC (one step on the mean of their contributions), a group under the
    hybrid, one under BMUF and without synchronisation (local steps)."""
    if isinstance(cfg, (AllReduceConfig, GtcConfig)):
        return world_size
    if isinstance(cfg, HybridConfig):
        return hybrid_group_size(cfg, world_size)
    return 1


def load_sync_config(path: str | Path | None, overrides: Sequence[str] = (), name: str | None = None) -> SyncConfig:
    """The strategy settings in ``path`` (``name:`` there, in ``overrides`` or ``name`` picks the class)."""
    data = read_yaml(path) if path is not None else {}
    for item in overrides:
        key, value = parse_override(item)
        if key == "name":
            name = value
    name = name or data.get("name") or (Path(path).stem if path is not None else None)
    if name not in CONFIG_CLASSES:
        raise UserError(f"sync name must be one of {sorted(CONFIG_CLASSES)}, got {name!r}")
    overrides = [o for o in overrides if parse_override(o)[0] != "name"] + [f"name={name}"]
    return load_config(CONFIG_CLASSES[name], path, overrides)
