"""The local search of the decoding setting: interior optima on constructed objectives, grids that extend."""

import logging
import math

import pytest

from asr_trainer.decode.search import Axis, local_search

SCALES = Axis("scale", (0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0), 0.1, 20.0, geometric=True)
PENALTIES = Axis("penalty", (0.0, 1.0, 2.0, 3.0), 0.0, 10.0)


def bowl(scale_opt: float, penalty_opt: float):
    """A convex objective with its minimum at (scale_opt, penalty_opt), counting its calls."""
    calls = []

    def objective(point):
        calls.append(point)
        scale, penalty = point
        return (math.log(scale / scale_opt)) ** 2 + 0.1 * (penalty - penalty_opt) ** 2
    return objective, calls


def test_an_interior_optimum_is_found_with_every_neighbour_tried_and_few_evaluations():
    objective, calls = bowl(2.0, 1.0)
    result = local_search(objective, (SCALES, PENALTIES), start=(1.0, 2.0))
    assert result.best == (2.0, 1.0) and result.at_bound == (None, None)
    for neighbour in [(1.5, 1.0), (3.0, 1.0), (2.0, 0.0), (2.0, 2.0)]:
        assert result.values[neighbour] > result.values[result.best]
    assert len(calls) == len(set(calls)) == len(result.values)  # each point evaluated once
    assert len(calls) < len(SCALES.values) * len(PENALTIES.values)  # cheaper than the full grid
    assert result.grids == (SCALES.values, PENALTIES.values)  # no edge reached: nothing extended


def test_an_optimum_beyond_the_initial_grids_extends_them_until_it_is_interior(caplog):
    objective, _ = bowl(12.8, 6.0)  # scale beyond 8 (8 * 8/5 = 12.8), penalty beyond 3
    with caplog.at_level(logging.INFO, logger="asr_trainer.decode.search"):
        result = local_search(objective, (SCALES, PENALTIES), start=(1.0, 2.0))
    assert result.best == (12.8, 6.0) and result.at_bound == (None, None)
    scales, penalties = result.grids
    assert scales[-2:] == (12.8, 20.0)  # 12.8 * 1.6 = 20.48, clamped to the range's 20
    assert penalties == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)  # one value past the optimum
    assert result.values[(12.8, 7.0)] > result.values[result.best] < result.values[(20.0, 6.0)]
    assert "penalty: the search reached the high edge of its grid; extended it to 7" in caplog.text


def test_the_low_edge_extends_geometrically_for_the_scale():
    objective, _ = bowl(0.25, 0.0)
    result = local_search(objective, (SCALES, PENALTIES), start=(1.0, 0.0))
    assert result.best[0] == pytest.approx(0.255, abs=1e-3)  # 0.5 -> 0.3571 -> 0.2551 -> 0.1822
    assert result.grids[0][0] == pytest.approx(0.1822, abs=1e-4)
    assert result.at_bound == (None, "lower")  # penalty 0 is the range's lower bound: reported, not passed


def test_a_bound_stops_the_extension_and_is_reported():
    objective, _ = bowl(1.0, 25.0)
    result = local_search(objective, (SCALES, PENALTIES), start=(1.0, 0.0))
    assert result.best == (1.0, 10.0) and result.at_bound == (None, "upper")
    assert result.grids[1][-1] == 10.0


def test_ties_stay_put_and_a_one_value_axis_is_fixed():
    result = local_search(lambda p: 1.0, (SCALES, PENALTIES), start=(1.1, 2.2))
    assert result.best == (1.0, 2.0)  # the nearest grid point; no neighbour is strictly better
    fixed = Axis("scale", (1.0,), 0.1, 20.0, geometric=True)
    objective, _ = bowl(3.0, 3.0)
    result = local_search(objective, (fixed, PENALTIES), start=(1.0, 0.0))
    assert result.best == (1.0, 3.0) and result.at_bound == ("fixed", None)
    assert result.grids[0] == (1.0,)


@pytest.mark.parametrize("values, lower, upper, geometric, match", [
    ((), 0.0, 1.0, False, "non-empty"), ((2.0, 1.0), 0.0, 5.0, False, "ascending"),
    ((1.0, 12.0), 0.0, 10.0, False, "within the bounds"), ((0.0, 1.0), 0.0, 2.0, True, "positive")])
def test_bad_axes_are_clear_errors(values, lower, upper, geometric, match):
    with pytest.raises(ValueError, match=match):
        Axis("x", values, lower, upper, geometric)


def test_the_start_must_have_one_coordinate_per_axis():
    with pytest.raises(ValueError, match="coordinates"):
        local_search(lambda p: 0.0, (SCALES, PENALTIES), start=(1.0,))
