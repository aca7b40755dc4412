"""Which trial to take away: by number, the knee of the Pareto front, or the best Dice under a budget."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from studies._errors import ExportError
from studies._records import TrialRecord, complete_records, pareto_records


def knee_record(records: Sequence[TrialRecord]) -> TrialRecord:
    """The knee of the Dice/GFLOPs Pareto front: the point farthest from the straight line between the
    front's two ends, with Dice and log10(GFLOPs) each scaled to [0, 1] over the front (costs span
    orders of magnitude; a log scale makes "twice as cheap" count the same everywhere). Ties, and
    fronts of one or two points, go to the higher Dice."""
    front = pareto_records(records)
    if not front:
        raise ExportError("--knee: the study has no COMPLETE trials, so no Pareto front")
    dice = np.array([r.dice or 0.0 for r in front], dtype=float)
    cost = np.log10(np.maximum(np.array([r.gflops or 0.0 for r in front], dtype=float), 1e-12))

    def scaled(v: np.ndarray) -> np.ndarray:
        span = float(v.max() - v.min())
        return (v - v.min()) / span if span > 0 else np.zeros_like(v)

    x, y = scaled(cost), scaled(dice)  # the front rises from (0, 0) (cheapest) to (1, 1) (best Dice)
    distance = np.abs(y - x) / math.sqrt(2) if len(front) > 2 else np.zeros(len(front))
    order = sorted(range(len(front)), key=lambda i: (-round(float(distance[i]), 12), -dice[i]))
    return front[order[0]]


def best_under_budget(records: Sequence[TrialRecord], max_gflops: float) -> TrialRecord:
    """The COMPLETE trial with the highest Dice whose forward pass costs at most ``max_gflops``."""
    done = complete_records(records)
    if not done:
        raise ExportError("--max-gflops: the study has no COMPLETE trials")
    within = [r for r in done if (r.gflops or 0.0) <= max_gflops]
    if not within:
        cheapest = min(r.gflops or 0.0 for r in done)
        raise ExportError(
            f"--max-gflops {max_gflops:g}: no COMPLETE trial costs that little; "
            f"the cheapest needs {cheapest:.4g} GFLOPs"
        )
    return max(within, key=lambda r: (r.dice or 0.0, -(r.gflops or 0.0)))
