"""What a synchronised run hands to the decoder, and what an exact resume would need.

* :func:`global_model_state`: the model ``epoch-N.pt`` holds. Under BMUF / hybrid
  the replicas restart from the look-ahead point ``W_g + eta Delta`` (Nesterov);
  the decoder gets the global model ``W_g`` (with the block's mean buffers).
  Only meaningful right after a block sync, which the trainer forces at every
  epoch end (:func:`close_block`). Otherwise it is the (synchronised) model.
* :func:`strategy_state`: everything a resume needs beyond ``epoch-N.pt``: every
  hosted replica (model, optimizer, scheduler), GTC residuals / taus / twin
  optimizers per worker, BMUF ``W_g`` and ``Delta``, the step count (position in
  the block), each hosted worker's sampler and RNG states. Written per process
  (``strategy-<epoch>.pt`` in a simulation, ``strategy-<epoch>-rank<r>.pt`` for
  real runs; ``strategy-step<N>[-rank<r>].pt`` mid-epoch), atomically, and read
  back by :func:`load_strategy_state` (see :mod:`asr_trainer.train.fit_sync`).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import torch

from asr_trainer.sync import SyncStrategy
from asr_trainer.sync import flat
from asr_trainer.train import checkpoint as ckpt
from asr_trainer.train.workers import WorkerData


def close_block(strategy: SyncStrategy, closed_at: int | None) -> int:
    """Run the BMUF sync of an open block now, so every replica agrees (epoch end).

    ``closed_at``: the step count of the previous call (no second sync without
    steps in between). Returns the step count to pass next time.
    """
    if strategy.bmuf is not None and closed_at != strategy.step_count:
        strategy.finish()
    return strategy.step_count


def global_model(strategy: SyncStrategy) -> torch.nn.Module:
    """A copy of the model to validate and decode (``W_g`` under BMUF after a sync)."""
    model = copy.deepcopy(strategy.model)
    bmuf = strategy.bmuf
    if bmuf is not None and bmuf.w_g is not None:
        flat.set_params(model, bmuf.w_g)
    return model


def block_momentum_norm(strategy: SyncStrategy) -> float | None:
    """``||Delta||_2`` of BMUF, when this process holds it."""
    bmuf = strategy.bmuf
    return float(bmuf.delta.norm()) if bmuf is not None and bmuf.delta is not None else None


def strategy_state(strategy: SyncStrategy, data: WorkerData, epoch: int, step: int,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The strategy's and the hosted workers' state after ``step`` global steps (see module doc).

    ``extra``: the trainer's own counters (block-close position, partial epoch totals).
    """
    state = strategy.state_dict()
    state["strategy_step_count"] = state.pop("step_count")
    state.update({"epoch": epoch, "step": step, "workers": data.state_dict(), "rng": ckpt.rng_state(),
                  "trainer": extra or {}})
    return state


def load_strategy_state(strategy: SyncStrategy, data: WorkerData, state: dict[str, Any], mid_epoch: bool) -> None:
    """Inverse of :func:`strategy_state`: replicas, GTC/BMUF state, RNGs, and (``mid_epoch``) the samplers' positions."""
    strategy.load_state_dict({**state, "step_count": state["strategy_step_count"]})
    data.load_state_dict(state["workers"], samplers=mid_epoch)
    ckpt.restore_rng(state["rng"])


def strategy_path(exp_dir: Path, tag: int | str, rank: int | None) -> Path:
    """``strategy-<tag>.pt`` (whole simulated cluster) or ``strategy-<tag>-rank<rank>.pt``.

    ``tag``: the epoch (epoch-end state) or ``step<N>`` (mid-epoch state after global step ``N``).
    """
    return Path(exp_dir) / (f"strategy-{tag}.pt" if rank is None else f"strategy-{tag}-rank{rank}.pt")


def strategy_pattern(rank: int | None, step: bool = False) -> re.Pattern:
    """The file names of :func:`strategy_path` for ``rank`` (for pruning); ``step``: the mid-epoch ones."""
    tag = r"step(\d+)" if step else r"(\d+)"
    return re.compile(rf"^strategy-{tag}\.pt$" if rank is None else rf"^strategy-{tag}-rank{rank}\.pt$")


def save_strategy_state(exp_dir: Path, state: dict[str, Any], rank: int | None, tag: int | str) -> Path:
    """Write this process's ``state`` atomically as :func:`strategy_path` ``(exp_dir, tag, rank)``."""
    path = strategy_path(exp_dir, tag, rank)
    ckpt.save_checkpoint(path, state)
    return path


def prune_strategy_states(exp_dir: Path, rank: int | None, keep_last: int) -> None:
    """Keep the last ``keep_last`` epoch-end and mid-epoch strategy files of this process."""
    for step in (False, True):
        ckpt.prune_checkpoints(Path(exp_dir), keep_last, strategy_pattern(rank, step))
