"""Pareto maths on plain arrays (no Optuna, no Plotly)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_mask(values: np.ndarray, maximize: Sequence[bool], *, chunk: int = 2048) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n points × k objectives).

    Row ``i`` is dominated if some row is at least as good in every objective and strictly better
    in one. Identical points do not dominate each other. Vectorised in chunks: O(n²·k) work but
    O(chunk·n) memory, fast for tens of thousands of points.
    """
    points = np.asarray(values, dtype=float)
    if points.ndim != 2 or points.shape[1] != len(maximize):
        raise ValueError(f"values must have shape (n, {len(maximize)}), got {points.shape}")
    if points.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    cost = points * signs  # minimise every column
    dominated = np.zeros(points.shape[0], dtype=bool)
    for start in range(0, points.shape[0], chunk):
        block = cost[start : start + chunk]  # (b, k)
        no_worse = (cost[None, :, :] <= block[:, None, :]).all(axis=2)  # (b, n): j no worse than i
        better = (cost[None, :, :] < block[:, None, :]).any(axis=2)
        dominated[start : start + chunk] = np.any(no_worse & better, axis=1)
    return ~dominated


def hypervolume_2d(values: np.ndarray, maximize: Sequence[bool], reference: Sequence[float]) -> float:
    """Area dominated by 2-objective ``values`` and bounded by ``reference`` (sort-based, O(n log n))."""
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
    cost = cost[np.lexsort((cost[:, 1], cost[:, 0]))]
    area, best_second = 0.0, ref[1]
    for first, second in cost:
        if second < best_second:
            area += (ref[0] - first) * (best_second - second)
            best_second = second
    return float(area)
