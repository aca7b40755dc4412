"""Pareto maths against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from studies import hypervolume_2d, pareto_mask


def brute_force(values: np.ndarray, maximize: list[bool]) -> np.ndarray:
    signs = np.array([-1.0 if m else 1.0 for m in maximize])
    cost = values * signs
    keep = []
    for i in range(len(cost)):
        dominated = any(all(cost[j] <= cost[i]) and any(cost[j] < cost[i]) for j in range(len(cost)) if j != i)
        keep.append(not dominated)
    return np.array(keep, dtype=bool)


@pytest.mark.parametrize("seed", range(5))
def test_mask_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(60, 2)).astype(float)  # many ties and duplicates
    assert np.array_equal(pareto_mask(values, [True, False], chunk=7), brute_force(values, [True, False]))


def test_three_objectives_and_empty_input() -> None:
    rng = np.random.default_rng(9)
    values = rng.random((40, 3))
    assert np.array_equal(pareto_mask(values, [True, False, False]), brute_force(values, [True, False, False]))
    assert pareto_mask(np.zeros((0, 2)), [True, False]).shape == (0,)
    with pytest.raises(ValueError, match="shape"):
        pareto_mask(np.zeros((3, 3)), [True, False])


def test_hypervolume_of_a_hand_drawn_front() -> None:
    # maximise dice, minimise gflops; reference (dice 0, gflops 10)
    values = np.array([[0.5, 1.0], [0.8, 4.0], [0.4, 5.0]])  # the last is dominated
    # rectangles: gflops 1..10 × dice 0..0.5 = 4.5, plus gflops 4..10 × dice 0.5..0.8 = 1.8
    assert hypervolume_2d(values, [True, False], [0.0, 10.0]) == pytest.approx(6.3)
    assert hypervolume_2d(np.zeros((0, 2)), [True, False], [0.0, 10.0]) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_sort_based_two_objective_mask_equals_the_general_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 40, size=(3000, 2)).astype(float)
    padded = np.column_stack([values, np.zeros(len(values))])  # a constant third objective changes nothing
    assert np.array_equal(pareto_mask(values, [True, False]), pareto_mask(padded, [True, False, True]))
