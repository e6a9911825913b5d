"""Links and cluster topology for the cost model: latency, bandwidth, workers per node.

A :class:`Link` is the alpha-beta model of one point-to-point connection:
sending ``n`` bytes costs ``latency_s + n / bandwidth_Bps`` seconds.
A :class:`Topology` is a cluster of nodes with ``workers_per_node`` workers
(GPUs) each, connected by ``intra`` inside a node and ``inter`` between nodes.

Presets (``LINK_PRESETS``; bandwidth is the nominal line rate in bytes/s, one
direction; latency is a typical small-message one-way time of the software
stack in use, not of the wire alone):

===========  ===============  ==========  ==========================================
name         bandwidth        latency     what
===========  ===============  ==========  ==========================================
10gbe        1.25e9 B/s       50 us       10 Gb Ethernet, TCP (MPI/gloo over sockets)
25gbe        3.125e9 B/s      30 us       25 Gb Ethernet, TCP (e.g. AWS p3.16xlarge)
ib100        12.5e9 B/s       3 us        100 Gb InfiniBand EDR, RDMA verbs
pcie3        12e9 B/s         10 us       PCIe 3.0 x16 between GPUs of a node
nvlink       100e9 B/s        8 us        NVLink 2 (V100, ring over NVLink as NCCL builds it)
===========  ===============  ==========  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    """Alpha-beta link: ``latency_s`` seconds per message, ``bandwidth_Bps`` bytes/s."""

    latency_s: float
    bandwidth_Bps: float

    def __post_init__(self) -> None:
        if self.latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, got {self.latency_s}")
        if self.bandwidth_Bps <= 0:
            raise ValueError(f"bandwidth_Bps must be > 0, got {self.bandwidth_Bps}")

    def send(self, nbytes: float) -> float:
        """Seconds to send one message of ``nbytes`` bytes."""
        return self.latency_s + nbytes / self.bandwidth_Bps

    def shared(self, streams: int) -> "Link":
        """This link when ``streams`` concurrent transfers share its bandwidth."""
        return Link(self.latency_s, self.bandwidth_Bps / max(1, streams))


LINK_PRESETS: dict[str, Link] = {
    "10gbe": Link(50e-6, 10e9 / 8),
    "25gbe": Link(30e-6, 25e9 / 8),
    "ib100": Link(3e-6, 100e9 / 8),
    "pcie3": Link(10e-6, 12e9),
    "nvlink": Link(8e-6, 100e9),
}


def link_preset(name: str) -> Link:
    """The preset link ``name`` (see the module table); ValueError names the known ones."""
    if name not in LINK_PRESETS:
        raise ValueError(f"unknown link preset {name!r}; known: {sorted(LINK_PRESETS)}")
    return LINK_PRESETS[name]


@dataclass(frozen=True)
class Topology:
    """``workers_per_node`` workers per node; ``intra`` link inside, ``inter`` between nodes."""

    workers_per_node: int
    intra: Link
    inter: Link

    def __post_init__(self) -> None:
        if self.workers_per_node < 1:
            raise ValueError(f"workers_per_node must be >= 1, got {self.workers_per_node}")

    def nodes_spanned(self, workers: int, per_node: int | None = None) -> int:
        """Nodes holding ``workers`` workers packed ``per_node`` (default: full nodes) a node."""
        k = min(per_node or self.workers_per_node, self.workers_per_node)
        return -(-workers // k)
