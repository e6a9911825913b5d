"""Local search of a grid that extends at its edges: the minimiser of an expensive, noisy objective.

The search is coordinate descent on grid points. From the grid point nearest to ``start`` it
takes each axis in turn and moves to the better of the two neighbouring grid values while that
is strictly better than the current point (ties stay put), and repeats the round over the axes
until no axis moves. Whenever the current point sits on an edge of an axis's grid, that grid is
first extended by one value beyond the edge (the edge step repeated, or the edge ratio for a
geometric axis), clamped to the axis's bound. So the point returned is no worse than all of its
grid neighbours, and it is interior on every axis except where a bound stopped the extension
(:attr:`SearchResult.at_bound` says which). Every value of the objective is computed once.

It terminates: each move strictly lowers the objective, and each grid grows by at most the
finitely many values between its initial edges and its bounds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

log = logging.getLogger(__name__)

Point = tuple[float, ...]


@dataclass(frozen=True)
class Axis:
    """One searched dimension: its initial grid (ascending), its bounds, and how the grid extends.

    ``geometric``: extend by the ratio of the two edge values (for positive scales) instead of
    their difference. A single-value grid has no step: that axis is held fixed.
    """

    name: str
    values: tuple[float, ...]
    lower: float
    upper: float
    geometric: bool = False

    def __post_init__(self) -> None:
        if not self.values or list(self.values) != sorted(set(self.values)):
            raise ValueError(f"{self.name}: the grid must be non-empty, ascending and without repeats, got {self.values}")
        if not self.lower <= self.values[0] <= self.values[-1] <= self.upper:
            raise ValueError(f"{self.name}: the grid {self.values} must lie within the bounds [{self.lower}, {self.upper}]")
        if self.geometric and self.values[0] <= 0:
            raise ValueError(f"{self.name}: a geometric grid needs positive values, got {self.values}")

    def beyond(self, grid: Sequence[float], side: int) -> float | None:
        """The next value past the low (``side=-1``) or high (``side=+1``) edge of ``grid``, clamped to the
        bound; None when that edge is the bound already or the grid has one value (no step)."""
        if len(grid) < 2:
            return None
        edge, inner = (grid[-1], grid[-2]) if side > 0 else (grid[0], grid[1])
        bound = self.upper if side > 0 else self.lower
        if edge == bound:
            return None
        value = edge * (edge / inner) if self.geometric else edge + (edge - inner)
        value = float(f"{value:.4g}")  # a short label, e.g. 12.8 rather than 12.800000000000002
        return min(value, bound) if side > 0 else max(value, bound)


@dataclass
class SearchResult:
    """``best``: the point chosen; ``values``: the objective at every point tried, in the order tried;
    ``grids``: each axis's grid as extended; ``at_bound``: per axis, ``"lower"``/``"upper"`` where
    ``best`` sits on a bound its grid could not pass, ``"fixed"`` for a one-value axis, else None."""

    best: Point
    values: dict[Point, float]
    grids: tuple[tuple[float, ...], ...]
    at_bound: tuple[str | None, ...] = field(default=())


def local_search(objective: Callable[[Point], float], axes: Sequence[Axis], start: Sequence[float]) -> SearchResult:
    """Minimise ``objective`` over the grids of ``axes`` from the grid point nearest to ``start``."""
    if len(start) != len(axes):
        raise ValueError(f"start {tuple(start)} has {len(start)} coordinates for {len(axes)} axes")
    grids = [list(a.values) for a in axes]
    index = [min(range(len(g)), key=lambda i, g=g, s=s: (abs(g[i] - s), i)) for g, s in zip(grids, start)]
    values: dict[Point, float] = {}

    def value(idx: Sequence[int]) -> float:
        point = tuple(grids[k][i] for k, i in enumerate(idx))
        if point not in values:
            values[point] = objective(point)
            log.debug("objective at %s: %g", point, values[point])
        return values[point]

    moved = True
    while moved:
        moved = False
        for k, axis in enumerate(axes):
            while _step(axis, grids[k], index, k, value):
                moved = True
    best = tuple(grids[k][i] for k, i in enumerate(index))
    at_bound = tuple(_bound_of(axis, grids[k], index[k]) for k, axis in enumerate(axes))
    return SearchResult(best, values, tuple(tuple(g) for g in grids), at_bound)


def _step(axis: Axis, grid: list[float], index: list[int], k: int, value: Callable[[Sequence[int]], float]) -> bool:
    """Extend ``grid`` where ``index[k]`` is on its edge, then move ``index[k]`` to the better neighbour if that
    is strictly better than staying; returns whether it moved."""
    _extend_at_edge(axis, grid, index, k)
    here = value(index)
    neighbours = [i for i in (index[k] - 1, index[k] + 1) if 0 <= i < len(grid)]
    scored = [(value(index[:k] + [i] + index[k + 1:]), i) for i in neighbours]
    if not scored or min(scored)[0] >= here:
        return False
    index[k] = min(scored)[1]
    return True


def _extend_at_edge(axis: Axis, grid: list[float], index: list[int], k: int) -> None:
    """Add one value past each edge of ``grid`` that ``index[k]`` sits on (where the bound allows)."""
    if index[k] == 0 and (low := axis.beyond(grid, -1)) is not None:
        grid.insert(0, low)
        index[k] += 1
        log.info("%s: the search reached the low edge of its grid; extended it to %g", axis.name, low)
    if index[k] == len(grid) - 1 and (high := axis.beyond(grid, +1)) is not None:
        grid.append(high)
        log.info("%s: the search reached the high edge of its grid; extended it to %g", axis.name, high)


def _bound_of(axis: Axis, grid: list[float], i: int) -> str | None:
    """Why the chosen grid value ``grid[i]`` has no neighbour on one side, if it has none."""
    if len(grid) == 1:
        return "fixed"
    if i == 0 and math.isclose(grid[0], axis.lower):
        return "lower"
    if i == len(grid) - 1 and math.isclose(grid[-1], axis.upper):
        return "upper"
    return None
