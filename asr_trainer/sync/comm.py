"""Collectives over logical workers: one API, a simulated and a torch.distributed backend.

Strategy code is written once over "the logical workers this process hosts"
(:attr:`Communicator.hosted`). :class:`SimCommunicator` hosts all ``N`` workers in
one process, so its collectives are plain tensor ops over the hosted workers'
contributions; :class:`DistCommunicator` hosts one worker per process and calls
``torch.distributed`` (gloo on CPU, nccl on GPU).

Traffic is counted here, once, from the actual message sizes, for ring
algorithms (per hosted worker, in bytes): all-reduce of ``B`` bytes over ``m``
members sends and receives ``2 (m-1)/m B``; all-gather of payloads padded to the
largest ``L`` (gloo needs equal sizes) sends and receives ``(m-1) (L + 8)`` (8 for
the size exchange); broadcast of ``B`` bytes (pipelined chain from the root)
receives ``B`` at every non-root and sends ``B`` from all but the last member.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

SIZE_BYTES = 8


@dataclass(frozen=True)
class Group:
    """An ordered set of global ranks; ``root`` (the first) is its representative."""

    ranks: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.ranks)

    @property
    def root(self) -> int:
        return self.ranks[0]


@dataclass
class Traffic:
    """Bytes per hosted worker since the last :meth:`Communicator.reset_meters`."""

    sent: dict[int, float]
    received: dict[int, float]
    payload: dict[int, float]
    seconds: float = 0.0


class Communicator(ABC):
    """Collectives over :class:`Group` s of logical workers; counts traffic and time."""

    def __init__(self, world_size: int, hosted: Sequence[int]) -> None:
        self.world_size = world_size
        self.hosted = tuple(hosted)
        self.world = Group(tuple(range(world_size)))
        self.reset_meters()

    def reset_meters(self) -> None:
        zero = {r: 0.0 for r in self.hosted}
        self.traffic = Traffic(dict(zero), dict(zero), dict(zero))

    def hosted_in(self, group: Group) -> list[int]:
        """Members of ``group`` hosted by this process, in group order."""
        return [r for r in group.ranks if r in self.hosted]

    def register(self, groups: Sequence[Group]) -> None:
        """Prepare sub-groups; every process calls this with the same list, in the same order."""

    def all_reduce_mean(self, group: Group, partial_sum: torch.Tensor) -> torch.Tensor | None:
        """Mean over all members of ``group``.

        ``partial_sum``: the sum, in group order, of the contributions of the
        members hosted here (see :func:`local_sum`). Returns a new tensor, or None
        when no member is hosted here.
        """
        members = self.hosted_in(group)
        if not members:
            return None
        start = time.perf_counter()
        total = self._all_reduce_sum(group, partial_sum) if len(members) < group.size else partial_sum.clone()
        self.traffic.seconds += time.perf_counter() - start
        nbytes = total.numel() * total.element_size() * self.reduce_wire_factor(group)
        self._count(members, nbytes, nbytes, 0.0)
        return total.div_(group.size)

    def all_gather_bytes(self, group: Group, payloads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Every member's uint8 payload (sizes may differ), in group order.

        ``payloads``: one per hosted member of ``group``, in group order.
        """
        members = self.hosted_in(group)
        if len(payloads) != len(members):
            raise ValueError(f"{len(payloads)} payloads for {len(members)} hosted members")
        start = time.perf_counter()
        gathered = self._all_gather_bytes(group, payloads) if group.size > 1 else list(payloads)
        self.traffic.seconds += time.perf_counter() - start
        padded = (group.size - 1) * (max(p.numel() for p in gathered) + SIZE_BYTES)
        for rank, p in zip(members, payloads):
            self._count([rank], padded, padded, p.numel())
        return gathered

    def broadcast(self, group: Group, tensor: torch.Tensor) -> torch.Tensor:
        """``group.root``'s ``tensor`` at every hosted member (non-roots pass one of the same shape)."""
        members = self.hosted_in(group)
        if group.size == 1 or not members:
            return tensor
        start = time.perf_counter()
        out = self._broadcast(group, tensor)
        self.traffic.seconds += time.perf_counter() - start
        nbytes = tensor.numel() * tensor.element_size()
        for rank in members:
            sends = rank != group.ranks[-1]
            self._count([rank], nbytes if sends else 0.0, 0.0 if rank == group.root else nbytes, 0.0)
        return out

    def reduce_wire_factor(self, group: Group) -> float:
        """Bytes each member sends (and receives) per byte of an all-reduced tensor: ring all-reduce."""
        return 2 * (group.size - 1) / group.size

    def barrier(self) -> None:
        """Return once every process got here (a no-op when this process hosts every worker). Not metered."""
        if len(self.hosted) < self.world_size:
            self._barrier()

    def all_reduce_max(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise maximum of ``values`` over all processes, a new tensor (control values: not metered)."""
        return self._all_reduce_op(values, "max") if len(self.hosted) < self.world_size else values.clone()

    def all_reduce_min(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise minimum of ``values`` over all processes, a new tensor (control values: not metered)."""
        return self._all_reduce_op(values, "min") if len(self.hosted) < self.world_size else values.clone()

    def _count(self, ranks: Sequence[int], sent: float, received: float, payload: float) -> None:
        for r in ranks:
            self.traffic.sent[r] += sent
            self.traffic.received[r] += received
            self.traffic.payload[r] += payload

    @abstractmethod
    def _all_reduce_sum(self, group: Group, partial_sum: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _all_gather_bytes(self, group: Group, payloads: Sequence[torch.Tensor]) -> list[torch.Tensor]: ...

    @abstractmethod
    def _broadcast(self, group: Group, tensor: torch.Tensor) -> torch.Tensor: ...

    def _barrier(self) -> None:
        raise AssertionError("every worker is hosted here: nothing to wait for")

    def _all_reduce_op(self, values: torch.Tensor, op: str) -> torch.Tensor:
        raise AssertionError("every worker is hosted here: nothing to reduce")


class SimCommunicator(Communicator):
    """All ``world_size`` logical workers in this process; collectives are local tensor ops."""

    def __init__(self, world_size: int) -> None:
        super().__init__(world_size, range(world_size))

    def _all_reduce_sum(self, group: Group, partial_sum: torch.Tensor) -> torch.Tensor:
        raise AssertionError("every member is hosted: nothing to reduce")

    def _all_gather_bytes(self, group: Group, payloads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return list(payloads)

    def _broadcast(self, group: Group, tensor: torch.Tensor) -> torch.Tensor:
        return tensor


class DistCommunicator(Communicator):
    """One logical worker per process over an initialised ``torch.distributed`` default group.

    ``device``: where collective buffers live (``cpu`` for gloo, ``cuda`` for nccl).
    ``exact_order``: all-reduce by gathering every member's tensor and summing in rank
    order, exactly as :class:`SimCommunicator` does, so a real run is bit-identical to
    the simulated cluster. A ring all-reduce (the default) adds in another order per
    chunk; float rounding then differs by ~1e-8, which training can amplify. Costs
    (N-1) times the tensor on the wire instead of 2(N-1)/N times, and is counted so.
    """

    def __init__(self, device: torch.device | str = "cpu", exact_order: bool = False) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.device = torch.device(device)
        self.exact_order = exact_order
        self._groups: dict[tuple[int, ...], object] = {}
        super().__init__(dist.get_world_size(), [dist.get_rank()])

    def register(self, groups: Sequence[Group]) -> None:
        for g in groups:
            if 1 < g.size < self.world_size and g.ranks not in self._groups:
                self._groups[g.ranks] = self._dist.new_group(list(g.ranks))

    def _pg(self, group: Group):
        if group.size == self.world_size:
            return None  # default group
        return self._groups[group.ranks]

    def reduce_wire_factor(self, group: Group) -> float:
        return float(group.size - 1) if self.exact_order else super().reduce_wire_factor(group)

    def _all_reduce_sum(self, group: Group, partial_sum: torch.Tensor) -> torch.Tensor:
        mine = partial_sum.to(self.device, copy=True)
        if self.exact_order:
            parts = [torch.empty_like(mine) for _ in range(group.size)]
            self._dist.all_gather(parts, mine, group=self._pg(group))
            return local_sum(parts).to(partial_sum.device)
        self._dist.all_reduce(mine, group=self._pg(group))
        return mine.to(partial_sum.device)

    def _all_gather_bytes(self, group: Group, payloads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Sizes first (int64, one per member), then every payload padded to the largest; all buffers on
        ``self.device`` (nccl needs CUDA tensors), results back on the device of ``payloads`` (a no-op
        when they are the same: a GPU payload never visits the host; only the sizes are read there)."""
        (mine,) = payloads
        pg = self._pg(group)
        size = torch.tensor([mine.numel()], dtype=torch.int64, device=self.device)
        sizes = [torch.empty_like(size) for _ in range(group.size)]
        self._dist.all_gather(sizes, size, group=pg)
        lengths = torch.cat(sizes).tolist()
        padded = torch.zeros(max(lengths), dtype=torch.uint8, device=self.device)
        padded[: mine.numel()] = mine.to(self.device)
        out = [torch.empty_like(padded) for _ in range(group.size)]
        self._dist.all_gather(out, padded, group=pg)
        return [o[:n].to(mine.device) for o, n in zip(out, lengths)]

    def _broadcast(self, group: Group, tensor: torch.Tensor) -> torch.Tensor:
        buf = tensor.to(self.device, copy=True)
        self._dist.broadcast(buf, src=group.root, group=self._pg(group))
        return buf.to(tensor.device)

    def _barrier(self) -> None:
        self._dist.barrier()

    def _all_reduce_op(self, values: torch.Tensor, op: str) -> torch.Tensor:
        """``op`` (``max`` / ``min``) over the default group."""
        buf = values.to(self.device, copy=True)
        reduce_op = self._dist.ReduceOp.MAX if op == "max" else self._dist.ReduceOp.MIN
        self._dist.all_reduce(buf, op=reduce_op)
        return buf.to(values.device)


def local_sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum of ``tensors`` in the order given, into a new tensor (the partial sum of hosted members)."""
    total = None
    for t in tensors:
        total = t.clone() if total is None else total.add_(t)
    if total is None:
        raise ValueError("local_sum of nothing")
    return total
