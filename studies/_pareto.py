"""Pareto maths on plain arrays (no Optuna, no Plotly)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_mask(values: np.ndarray, maximize: Sequence[bool], *, chunk: int = 2048) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n points × k objectives).

    Row ``i`` is dominated if some row is at least as good in every objective and strictly better
    in one. Identical points do not dominate each other. Two objectives: sort-based, O(n log n).
    More: vectorised in chunks, O(n²·k) work but O(chunk·n) memory.
    """
    points = np.asarray(values, dtype=float)
    if points.ndim != 2 or points.shape[1] != len(maximize):
        raise ValueError(f"values must have shape (n, {len(maximize)}), got {points.shape}")
    if points.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    cost = points * signs  # minimise every column
    if cost.shape[1] == 2:
        return _pareto_mask_2d(cost)
    dominated = np.zeros(points.shape[0], dtype=bool)
    for start in range(0, points.shape[0], chunk):
        block = cost[start : start + chunk]  # (b, k)
        no_worse = (cost[None, :, :] <= block[:, None, :]).all(axis=2)  # (b, n): j no worse than i
        better = (cost[None, :, :] < block[:, None, :]).any(axis=2)
        dominated[start : start + chunk] = np.any(no_worse & better, axis=1)
    return ~dominated


def _pareto_mask_2d(cost: np.ndarray) -> np.ndarray:
    """Sort-based O(n log n) mask for two minimised objectives (same tie rules as the general case).

    After sorting by the first objective, a point is dominated by a point with a strictly smaller first
    value whose second is no larger, or by a point with an equal first value and a strictly smaller second.
    """
    order = np.lexsort((cost[:, 1], cost[:, 0]))
    first, second = cost[order, 0], cost[order, 1]
    starts = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])  # groups of equal first values
    group = np.cumsum(np.r_[True, first[1:] != first[:-1]]) - 1
    group_min = np.minimum.reduceat(second, starts)
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]  # best second among smaller firsts
    dominated_sorted = (before[group] <= second) | (group_min[group] < second)
    mask = np.empty(len(order), dtype=bool)
    mask[order] = ~dominated_sorted
    return mask


def hypervolume_2d(values: np.ndarray, maximize: Sequence[bool], reference: Sequence[float]) -> float:
    """Area dominated by 2-objective ``values`` and bounded by ``reference`` (sort-based and vectorised, O(n log n))."""
    points = np.asarray(values, dtype=float)
    if points.size == 0:
        return 0.0
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    cost = points * signs
    ref = np.asarray(reference, dtype=float) * signs
    inside = (cost < ref).all(axis=1)
    cost = cost[inside]
    if cost.shape[0] == 0:
        return 0.0
    cost = cost[np.lexsort((cost[:, 1], cost[:, 0]))]  # by the first objective, ties by the second
    # The staircase: points whose second objective beats every point before them.
    before = np.concatenate([[ref[1]], np.minimum.accumulate(cost[:, 1])[:-1]])
    stair = cost[cost[:, 1] < before]
    previous = np.concatenate([[ref[1]], stair[:-1, 1]])
    return float(np.sum((ref[0] - stair[:, 0]) * (previous - stair[:, 1])))
