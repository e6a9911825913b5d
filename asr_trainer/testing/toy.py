"""A tiny deterministic workload (MLP with BatchNorm, regression) for tests and smoke runs.

Worker ``w``'s ``c``-th batch depends only on ``(w, c)``, so a simulated and a
multi-process run see the same data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from asr_trainer.sync import flat_vectors as flat
from asr_trainer.sync.comm import Communicator
from asr_trainer.sync.config import SyncConfig
from asr_trainer.sync.replica import Replica
from asr_trainer.sync.strategy import build_strategy

IN, HIDDEN, BATCH = 4, 8, 8


def toy_model(seed: int = 0) -> nn.Module:
    """Linear(4, 8) -> BatchNorm1d(8) -> tanh -> Linear(8, 1), weights from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))


def toy_replica(lr: float = 0.05, momentum: float = 0.5, seed: int = 0) -> Replica:
    model = toy_model(seed)
    return Replica(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum))


class ToyData:
    """``grad_fn(worker, model) -> loss``: MSE on worker's next batch of a fixed linear target."""

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}
        self.target = torch.linspace(-1.0, 1.0, IN).unsqueeze(1)

    def __call__(self, worker: int, model: nn.Module) -> float:
        count = self.calls.get(worker, 0)
        self.calls[worker] = count + 1
        gen = torch.Generator().manual_seed(1_000_003 * worker + count)
        x = torch.randn(BATCH, IN, generator=gen) + 0.1 * worker
        y = x @ self.target + 0.1 * torch.randn(BATCH, 1, generator=gen)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return float(loss.detach())


def run_toy(cfg: SyncConfig, comm: Communicator, steps: int) -> dict[int, dict[str, Any]]:
    """Train the toy for ``steps`` under ``cfg``; per hosted rank its final parameters and buffers."""
    strategy = build_strategy(cfg, comm, toy_replica)
    data = ToyData()
    for _ in range(steps):
        strategy.step(data)
    return {
        rank: {"params": flat.params(gs.model), "buffers": flat.buffers(gs.model),
               "summary": strategy.summary.as_dict()}
        for gs in strategy.states for rank in gs.members
    }
