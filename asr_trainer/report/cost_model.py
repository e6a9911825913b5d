r"""Cost model of one training step of each synchronisation strategy, and speed-up.

Everything here is *modelled*, not measured: inputs are link parameters
(:mod:`asr_trainer.report.network`), the compute time of one minibatch and the
bytes each strategy sends (measured by the sync code, see
:func:`load_sync_stats`). Units: seconds, bytes; ``p`` is a number of workers.

Collectives (alpha-beta model; a link sends n bytes in ``a + n/B``)::

    ring all-reduce      T_ar(n, p)  = 2(p-1) a + 2(p-1)/p * n / B
    ring all-gather      T_ag(m, p)  = (p-1) a + (p-1) * m / B
                         m = largest message when padded (gloo needs equal sizes:
                         it is padded to the largest, after an all-gather of the
                         sizes, (p-1)(a + 8/B)), else the mean message
    tree broadcast       T_bt(n, p)  = ceil(log2 p) (a + n/B)
    ring broadcast       T_br(n, p)  = (p-1) a + n/B              (ideally pipelined)

Hierarchical versions, workers spread k = ``workers_per_node`` to a node over
M = ceil(p/k) nodes (intra link ``i``, inter link ``e``)::

    all-reduce   T_ar,i(n, k) + T_ar,e'(n/k, M)     e' = e with its bandwidth shared by k
                 (intra reduce-scatter + all-gather, and k concurrent cross-node
                 rings on shards of n/k: the NIC carries 2(M-1)/M * n)
    all-gather   T_ag,i(m, k) + T_ag,e(k m, M) + T_br,i((p-k) m, k)
                 (gather the node's k messages, exchange node bundles, spread the
                 p-k remote messages inside the node)
    broadcast    T_bt,e(n, M) + T_bt,i(n, k)

Step time of each strategy at N workers (c = compute of one minibatch on one
worker; the minibatch per worker is fixed, so N workers process N minibatches
per step)::

    allreduce  t = c + T_ar(4P, N)                                   (dense fp32 gradient)
    gtc        t = c + e + d * N * s + T_ag(s bytes, N)             (every worker receives all N)
    bmuf       t = c + (T_ar(4P, N) + u) / tau                       (one model all-reduce a block)
    hybrid     t = c + e + d * g * s + T_ag(s, g)                    (GTC inside a group of g)
                     + (T_ar(4P, N/g reps) + u + T_bt(4P, g)) / tau  (BMUF across groups, broadcast in group)

with P parameters, s = density * P elements per message (``bytes_per_element``
bytes each: Strom packs index and sign into one int32), e the encode time, d the
decode time per received element, u the BMUF filter arithmetic, tau the block
size. A group of g <= k sits inside one node (intra link); its representatives
sit ``max(1, k // g)`` to a node, so with g = k they are one per node.

Speed-up(N) = N * t(1) / t(N), t(1) = c (one worker trains without any sync).

What a per-step model leaves out (and so cannot show): convergence. A strategy
that needs more epochs (BMUF with many workers, or GTC with a large effective
batch) is slower to a target accuracy by that factor. :func:`speedup` takes an
explicit ``epochs_ratio`` (epochs to converge / baseline epochs, default 1: pure
throughput) so such an effect is stated, never hidden inside link parameters.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from asr_trainer.errors import UserError
from asr_trainer.report.gpu_compute import GpuCompute
from asr_trainer.report.network import Link, Topology, link_preset

STRATEGIES = ("allreduce", "gtc", "bmuf", "hybrid")
Strategy = Literal["allreduce", "gtc", "bmuf", "hybrid"]
SIZE_EXCHANGE_BYTES = 8  # one int64 per worker before a padded all-gather
FP32_BYTES = 4


# ---------------------------------------------------------------- collectives, one link
def ring_allreduce_s(nbytes: float, p: int, link: Link) -> float:
    """Ring all-reduce of ``nbytes`` among ``p`` workers: 2(p-1) a + 2(p-1)/p n/B."""
    if p <= 1:
        return 0.0
    return 2 * (p - 1) * link.latency_s + 2 * (p - 1) / p * nbytes / link.bandwidth_Bps


def ring_allgather_s(
    mean_bytes: float, max_bytes: float, p: int, link: Link, padded: bool = True
) -> float:
    """Ring all-gather of one message per worker; padded to ``max_bytes`` (gloo) or not."""
    if p <= 1:
        return 0.0
    per_msg = max_bytes if padded else mean_bytes
    t = (p - 1) * link.send(per_msg)
    if padded:
        t += (p - 1) * link.send(SIZE_EXCHANGE_BYTES)
    return t


def tree_broadcast_s(nbytes: float, p: int, link: Link) -> float:
    """Binomial-tree broadcast: ceil(log2 p) rounds of the whole message."""
    if p <= 1:
        return 0.0
    return math.ceil(math.log2(p)) * link.send(nbytes)


def ring_broadcast_s(nbytes: float, p: int, link: Link) -> float:
    """Ideally pipelined ring broadcast: (p-1) a + n/B."""
    if p <= 1:
        return 0.0
    return (p - 1) * link.latency_s + nbytes / link.bandwidth_Bps


# ---------------------------------------------------------------- hierarchical collectives
def _split(p: int, topo: Topology, per_node: int | None) -> tuple[int, int]:
    """(workers per node k, nodes M) for ``p`` workers packed ``per_node`` a node."""
    k = min(p, per_node or topo.workers_per_node, topo.workers_per_node)
    return k, -(-p // k)


def allreduce_s(nbytes: float, p: int, topo: Topology, per_node: int | None = None) -> float:
    """Hierarchical all-reduce (intra ring, then k shared cross-node rings on n/k)."""
    k, nodes = _split(p, topo, per_node)
    if nodes == 1:
        return ring_allreduce_s(nbytes, p, topo.intra)
    return ring_allreduce_s(nbytes, k, topo.intra) + ring_allreduce_s(
        nbytes / k, nodes, topo.inter.shared(k)
    )


def allgather_s(
    mean_bytes: float,
    max_bytes: float,
    p: int,
    topo: Topology,
    per_node: int | None = None,
    padded: bool = True,
) -> float:
    """Hierarchical all-gather of one (variable-size) message per worker; see module doc."""
    k, nodes = _split(p, topo, per_node)
    if nodes == 1:
        return ring_allgather_s(mean_bytes, max_bytes, p, topo.intra, padded)
    per_msg = max_bytes if padded else mean_bytes
    return (
        ring_allgather_s(mean_bytes, max_bytes, k, topo.intra, padded)
        + ring_allgather_s(k * mean_bytes, k * max_bytes, nodes, topo.inter, padded)
        + ring_broadcast_s((p - k) * per_msg, k, topo.intra)
    )


def broadcast_s(nbytes: float, p: int, topo: Topology, per_node: int | None = None) -> float:
    """Two-level tree broadcast: across nodes, then inside each node."""
    k, nodes = _split(p, topo, per_node)
    return tree_broadcast_s(nbytes, nodes, topo.inter) + tree_broadcast_s(nbytes, k, topo.intra)


# ---------------------------------------------------------------- strategies
@dataclass(frozen=True)
class Workload:
    """What one worker does per step; times in seconds, sizes in elements or bytes."""

    params: int = 24_000_000
    compute_s: float = 0.2
    gtc_density: float = 3e-3
    bytes_per_element: float = 4.0
    pad_ratio: float = 1.5
    encode_s: float = 0.5e-3
    decode_s_per_element: float = 2e-10
    bmuf_block: int = 50
    bmuf_update_s: float = 1e-3
    hybrid_group: int = 8
    padded_allgather: bool = True

    def __post_init__(self) -> None:
        checks = {
            "params": self.params >= 1,
            "compute_s": self.compute_s > 0,
            "gtc_density": 0 < self.gtc_density <= 1,
            "bytes_per_element": self.bytes_per_element > 0,
            "pad_ratio": self.pad_ratio >= 1,
            "encode_s": self.encode_s >= 0,
            "decode_s_per_element": self.decode_s_per_element >= 0,
            "bmuf_block": self.bmuf_block >= 1,
            "bmuf_update_s": self.bmuf_update_s >= 0,
            "hybrid_group": self.hybrid_group >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"workload setting(s) out of range: {', '.join(bad)}")

    @property
    def model_bytes(self) -> float:
        """Dense fp32 gradient or model, bytes."""
        return FP32_BYTES * self.params

    @property
    def message_elements(self) -> float:
        """Mean GTC message length, elements sent per worker per step."""
        return self.gtc_density * self.params

    @property
    def message_bytes(self) -> float:
        """Mean GTC message size, bytes."""
        return self.message_elements * self.bytes_per_element


@dataclass(frozen=True)
class StepTime:
    """Modelled seconds per step of one worker, split as the sync code measures it."""

    compute: float
    encode_decode: float = 0.0
    communicate: float = 0.0

    @property
    def total(self) -> float:
        return self.compute + self.encode_decode + self.communicate


def _gtc_step(w: Workload, p: int, topo: Topology, per_node: int | None = None) -> StepTime:
    """Synchronous GTC among ``p`` workers (all of them receive all p messages)."""
    if p <= 1:
        return StepTime(w.compute_s)
    comm = allgather_s(w.message_bytes, w.message_bytes * w.pad_ratio, p, topo, per_node,
                       w.padded_allgather)
    code = w.encode_s + w.decode_s_per_element * p * w.message_elements
    return StepTime(w.compute_s, code, comm)


def step_time(strategy: str, n: int, w: Workload, topo: Topology) -> StepTime:
    """Modelled :class:`StepTime` of ``strategy`` at ``n`` workers (formulas: module doc)."""
    if n < 1:
        raise ValueError(f"workers must be >= 1, got {n}")
    if n == 1:
        return StepTime(w.compute_s)
    if strategy == "allreduce":
        return StepTime(w.compute_s, 0.0, allreduce_s(w.model_bytes, n, topo))
    if strategy == "gtc":
        return _gtc_step(w, n, topo)
    if strategy == "bmuf":
        sync = allreduce_s(w.model_bytes, n, topo) + w.bmuf_update_s
        return StepTime(w.compute_s, 0.0, sync / w.bmuf_block)
    if strategy == "hybrid":
        return _hybrid_step(w, n, topo)
    raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")


def _hybrid_step(w: Workload, n: int, topo: Topology) -> StepTime:
    """GTC inside groups of g, BMUF among the n/g group representatives every block."""
    g = w.hybrid_group
    if n % g:
        raise ValueError(f"hybrid_group={g} must divide the number of workers {n}")
    inner = _gtc_step(w, g, topo)
    reps = n // g
    reps_per_node = max(1, topo.workers_per_node // g)
    sync = (allreduce_s(w.model_bytes, reps, topo, reps_per_node) + w.bmuf_update_s
            + broadcast_s(w.model_bytes, g, topo))
    return StepTime(w.compute_s, inner.encode_decode, inner.communicate + sync / w.bmuf_block)


def speedup(strategy: str, n: int, w: Workload, topo: Topology, epochs_ratio: float = 1.0) -> float:
    """N * t(1) / t(N), divided by ``epochs_ratio`` (convergence penalty; 1 = throughput)."""
    if epochs_ratio <= 0:
        raise ValueError(f"epochs_ratio must be > 0, got {epochs_ratio}")
    return n * w.compute_s / step_time(strategy, n, w, topo).total / epochs_ratio


# ---------------------------------------------------------------- scenario (YAML) and sync stats
@dataclass(frozen=True)
class Scenario:
    """A cluster and a workload, as ``conf/cost_model.yaml`` writes them."""

    workers_per_node: int = 8
    intra_link: str = "nvlink"
    inter_link: str = "25gbe"
    workers: list[int] = field(default_factory=lambda: [32, 64, 128])
    workload: Workload = Workload()
    gpu: GpuCompute = GpuCompute()  # what a study run's compute and GTC rounds cost on the cluster

    def __post_init__(self) -> None:
        for name in ("intra_link", "inter_link"):
            try:
                link_preset(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        if self.workers_per_node < 1 or not self.workers or min(self.workers) < 1:
            raise ValueError("workers_per_node and every entry of workers must be >= 1")

    def topology(self) -> Topology:
        return Topology(self.workers_per_node, link_preset(self.intra_link),
                        link_preset(self.inter_link))


SYNC_STATS_KEYS = ("strategy", "workers", "group_size", "bytes_sent_per_worker_per_step",
                   "bytes_received_per_worker_per_step", "gtc_density", "time_per_step_s", "steps")


def load_sync_stats(path: str | Path) -> dict:
    """Read and check a ``sync_stats.json`` written by the sync code (schema: DESIGN / brief)."""
    p = Path(path)
    try:
        stats = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read sync stats {p}: {e}") from None
    missing = [k for k in SYNC_STATS_KEYS if k not in stats]
    times = stats.get("time_per_step_s", {})
    missing += [f"time_per_step_s.{k}" for k in ("compute", "encode_decode", "communicate")
                if not isinstance(times, dict) or k not in times]
    if missing:
        raise UserError(f"sync stats {p} lacks {', '.join(missing)}")
    return stats


def workload_from_sync_stats(stats: dict, params: int, **overrides: float) -> Workload:
    """A :class:`Workload` from measured sync stats of a GTC (or hybrid) run.

    Measured: compute seconds per minibatch, encode+decode seconds (taken as the
    encode term, decode per element then 0) and the mean message of a worker:
    ``payload_bytes_per_worker_per_step`` (the worker's own encoded message;
    ``bytes_sent_per_worker_per_step`` is the ring all-gather traffic, about
    ``(g - 1)`` padded messages, see :mod:`asr_trainer.sync.comm`). Stats written
    before the payload was recorded fall back to ``bytes_sent`` (an over-estimate).
    ``params`` is the model's parameter count; ``overrides`` set other fields.
    """
    times = stats["time_per_step_s"]
    fields = dict(params=params, compute_s=float(times["compute"]),
                  encode_s=float(times["encode_decode"]), decode_s_per_element=0.0)
    if stats["strategy"] in ("gtc", "hybrid") and stats.get("gtc_density"):
        density = float(stats["gtc_density"])
        fields["gtc_density"] = density
        message = stats.get("payload_bytes_per_worker_per_step")
        if message is None:
            message = stats["bytes_sent_per_worker_per_step"]
        message = float(message)
        fields["bytes_per_element"] = message / (density * params) if message > 0 else 4.0
    if stats.get("group_size"):
        fields["hybrid_group"] = int(stats["group_size"])
    fields.update(overrides)
    try:
        return Workload(**fields)
    except ValueError as e:
        raise UserError(f"sync stats give an invalid workload: {e}") from None
