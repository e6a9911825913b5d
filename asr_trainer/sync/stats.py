"""Per-step synchronisation statistics and their running summary (``sync_stats.json``).

Bytes come from :class:`~asr_trainer.sync.comm.Communicator`'s meters (actual
message sizes); times are wall-clock seconds of this process: ``compute``
(the workers' forward/backward and optimizer steps, BMUF filter arithmetic),
``encode_decode`` (GTC thresholding, encoding, decoding, aggregation) and
``communicate`` (inside collectives). In a simulation one process runs every
worker, so its times are totals over the hosted workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


DESCRIPTIVE = ("hosted_workers", "params", "block_size")


@dataclass(frozen=True)
class StepStats:
    """One synchronised step; bytes are means over the workers hosted here."""

    step: int
    bytes_sent: float
    bytes_received: float
    payload_bytes: float
    density: float | None  # mean GTC density (sent / elements) of the hosted workers
    compute_s: float
    encode_decode_s: float
    communicate_s: float
    block_sync: bool
    dropped: int = 0  # GTC contributions of hosted workers dropped this step as non-finite
    worker_stats: tuple[Any, ...] = ()  # what grad_fn returned, per hosted worker in rank order


@dataclass
class SyncSummary:
    """Running means over the recorded steps.

    ``hosted_workers`` (workers run by the process that recorded it; its times are
    totals over them), ``params`` (model parameters) and ``block_size`` (BMUF /
    hybrid) describe the run for the report; the strategy sets them, None omits them.
    """

    strategy: str
    workers: int
    group_size: int
    hosted_workers: Optional[int] = None
    params: Optional[int] = None
    block_size: Optional[int] = None
    steps: int = 0
    last: Optional[StepStats] = None  # the latest recorded step (its per-step TensorBoard scalars)
    _sums: dict[str, float] = field(default_factory=dict)
    _density_steps: int = 0

    def add(self, s: StepStats) -> None:
        self.steps += 1
        self.last = s
        for key in ("bytes_sent", "bytes_received", "payload_bytes", "compute_s", "encode_decode_s", "communicate_s",
                    "dropped"):
            self._sums[key] = self._sums.get(key, 0.0) + getattr(s, key)
        if s.density is not None:
            self._density_steps += 1
            self._sums["density"] = self._sums.get("density", 0.0) + s.density

    def state_dict(self) -> dict[str, Any]:
        """The running sums and counts (for a resume: statistics then cover the whole run)."""
        return {"steps": self.steps, "sums": dict(self._sums), "density_steps": self._density_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.steps, self._sums, self._density_steps = state["steps"], dict(state["sums"]), state["density_steps"]
        self.last = None

    def mean(self, key: str) -> float:
        n = self._density_steps if key == "density" else self.steps
        return self._sums.get(key, 0.0) / n if n else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The ``sync_stats.json`` schema."""
        return {
            "strategy": self.strategy,
            "workers": self.workers,
            "group_size": self.group_size,
            "bytes_sent_per_worker_per_step": self.mean("bytes_sent"),
            "bytes_received_per_worker_per_step": self.mean("bytes_received"),
            "payload_bytes_per_worker_per_step": self.mean("payload_bytes"),
            "gtc_density": self.mean("density") if self._density_steps else None,
            "time_per_step_s": {
                "compute": self.mean("compute_s"),
                "encode_decode": self.mean("encode_decode_s"),
                "communicate": self.mean("communicate_s"),
            },
            "steps": self.steps,
            "gtc_dropped_nonfinite": int(self._sums.get("dropped", 0)),
            **{k: getattr(self, k) for k in DESCRIPTIVE if getattr(self, k) is not None},
        }

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")

    def scalars(self) -> dict[str, float]:
        """Flat ``{tag: value}`` for a TensorBoard ``SummaryWriter.add_scalar``.

        ``sync/<key>``: the running means of :meth:`as_dict`; ``sync/step/<key>``: the
        latest step alone (bytes sent / received per hosted worker, GTC density when the
        strategy thresholds, 1.0 when it was a BMUF block sync, else 0.0).
        """
        d = self.as_dict()
        out = {f"sync/{k}": float(v) for k, v in d.items()
               if isinstance(v, (int, float)) and k != "workers" and k not in DESCRIPTIVE}
        out.update({f"sync/time_{k}_s": v for k, v in d["time_per_step_s"].items()})
        if d["gtc_density"] is not None:
            out["sync/gtc_density"] = d["gtc_density"]
        out.update(step_scalars(self.last) if self.last is not None else {})
        return out


def step_scalars(s: StepStats) -> dict[str, float]:
    """``sync/step/<key>`` values of one step (see :meth:`SyncSummary.scalars`)."""
    out = {"sync/step/bytes_sent": float(s.bytes_sent), "sync/step/bytes_received": float(s.bytes_received),
           "sync/step/block_sync": float(s.block_sync)}
    if s.density is not None:
        out["sync/step/gtc_density"] = float(s.density)
    return out
