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
  real runs), atomically. Reading it back is left to the resume work.
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


def strategy_state(strategy: SyncStrategy, data: WorkerData, epoch: int, step: int) -> dict[str, Any]:
    """The strategy's and the hosted workers' state after ``step`` global steps (see module doc)."""
    groups = []
    for gs in strategy.states:
        extra = gs.extra
        groups.append({
            "ranks": gs.group.ranks,
            "members": list(gs.members),
            "replica": gs.replica.state_dict(),
            "gtc_residual": extra.get("residual"),
            "gtc_tau": extra.get("tau"),
            "twin_optimizer": {w: o.state_dict() for w, o in extra.get("twin_optimizer", {}).items()},
        })
    bmuf = strategy.bmuf
    return {
        "epoch": epoch,
        "step": step,
        "strategy_step_count": strategy.step_count,
        "world_size": strategy.comm.world_size,
        "hosted": list(strategy.comm.hosted),
        "groups": groups,
        "bmuf": None if bmuf is None else {"w_g": bmuf.w_g, "delta": bmuf.delta, "eta": bmuf.eta},
        "workers": data.state_dict(),
        "rng": ckpt.rng_state(),
    }


def strategy_path(exp_dir: Path, epoch: int, rank: int | None) -> Path:
    """``strategy-<epoch>.pt`` (whole simulated cluster) or ``strategy-<epoch>-rank<rank>.pt``."""
    return Path(exp_dir) / (f"strategy-{epoch}.pt" if rank is None else f"strategy-{epoch}-rank{rank}.pt")


def strategy_pattern(rank: int | None) -> re.Pattern:
    """The file names of :func:`strategy_path` for ``rank`` (for pruning)."""
    return re.compile(r"^strategy-(\d+)\.pt$" if rank is None else rf"^strategy-(\d+)-rank{rank}\.pt$")


def save_strategy_state(exp_dir: Path, state: dict[str, Any], rank: int | None, keep_last: int) -> Path:
    """Write ``state`` atomically; keep the last ``keep_last`` of this process's files."""
    path = strategy_path(exp_dir, state["epoch"], rank)
    ckpt.save_checkpoint(path, state)
    ckpt.prune_checkpoints(Path(exp_dir), keep_last, strategy_pattern(rank))
    return path
