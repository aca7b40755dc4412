"""Multi-objective asynchronous successive halving (MOASHA) for Ray Tune.

Ray's ``ASHAScheduler`` stops a trial at a rung when its one metric is below the rung's
``1 − 1/η`` quantile. In a search over Dice and GFLOPs that stops a cheap network that would sit
on the front because bigger ones have higher Dice. Here, as in Syne Tune's MOASHA (Schmucker et
al., 2021) and Auto-nnU-Net's multi-objective successive halving, each rung ranks the trials it
has seen by non-dominated sorting of (validation Dice, cost objectives), ties within a front
broken by crowding distance (NSGA-II's), and a trial continues when fewer than ``⌈n/η⌉`` of the
``n`` trials recorded at the rung (itself included) rank strictly before it.

The costs (GFLOPs, parameters) are known before training and in every result; measured
objectives (latency, memory) are NaN until a trial ends and are left out of the ranking.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

logger = logging.getLogger(__name__)


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """Front index of every row (0: non-dominated) of ``points``, all columns minimised."""
    n = points.shape[0]
    ranks = np.full(n, -1, dtype=int)
    remaining = np.arange(n)
    level = 0
    while remaining.size:
        sub = points[remaining]
        no_worse = (sub[None, :, :] <= sub[:, None, :]).all(axis=2)  # [i, j]: j no worse than i
        better = (sub[None, :, :] < sub[:, None, :]).any(axis=2)
        dominated = np.any(no_worse & better, axis=1)
        ranks[remaining[~dominated]] = level
        remaining = remaining[dominated]
        level += 1
    return ranks


def crowding_distances(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row within ``points`` (one front): boundaries are inf."""
    n, k = points.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for column in range(k):
        order = np.argsort(points[:, column], kind="stable")
        values = points[order, column]
        span = values[-1] - values[0]
        distance[order[0]] = distance[order[-1]] = math.inf
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def rank_before(points: np.ndarray, index: int) -> int:
    """How many rows rank strictly before row ``index``: by front, then by larger crowding distance."""
    ranks = nondominated_ranks(points)
    same = np.flatnonzero(ranks == ranks[index])
    crowding = np.empty(points.shape[0])
    crowding[same] = crowding_distances(points[same])
    ahead = ranks < ranks[index]
    ahead[same] = crowding[same] > crowding[index]
    return int(ahead.sum())


class MultiObjectiveASHA(FIFOScheduler):
    """Asynchronous successive halving whose rungs promote by non-dominated sorting.

    ``metrics`` and ``modes`` name the result keys ranked and their direction (``max``/``min``);
    a key whose value is missing or NaN in a result is left out of that comparison for every trial
    of the rung. Rungs at ``grace_period · η^k`` below ``max_t``; a trial that reaches ``max_t``
    is never stopped (it sends its complete result), as with ``stop_last_trials=False``.
    """

    def __init__(
        self,
        *,
        time_attr: str,
        metrics: Sequence[str],
        modes: Sequence[str],
        max_t: int,
        grace_period: int,
        reduction_factor: float = 3.0,
    ) -> None:
        if len(metrics) != len(modes) or not metrics:
            raise ValueError("metrics and modes must be non-empty and of the same length")
        if not 0 < grace_period <= max_t or reduction_factor <= 1:
            raise ValueError("need 0 < grace_period <= max_t and reduction_factor > 1")
        super().__init__()
        self._time_attr = time_attr
        self._metrics = tuple(metrics)
        self._signs = np.array([-1.0 if m == "max" else 1.0 for m in modes])
        self._max_t = max_t
        self._rf = reduction_factor
        count = int(math.log(max_t / grace_period) / math.log(reduction_factor)) + 1
        milestones = [grace_period * reduction_factor**k for k in range(count)]
        #: milestone → {trial_id: objective vector (minimised)}.
        self._rungs: dict[float, dict[str, np.ndarray]] = {m: {} for m in milestones if m < max_t}
        self.stopped: list[str] = []

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # its objectives are its own; the searcher's metric does not replace them

    def _vector(self, result: dict[str, Any]) -> np.ndarray:
        values = [float(result.get(name, math.nan)) for name in self._metrics]
        return np.array(values) * self._signs

    def decide(self, trial_id: str, progress: float, result: dict[str, Any]) -> str:
        """CONTINUE or STOP for ``trial_id``'s result at ``progress`` (the time attribute)."""
        if progress >= self._max_t:
            return TrialScheduler.CONTINUE
        for milestone in sorted(self._rungs, reverse=True):
            recorded = self._rungs[milestone]
            if progress < milestone:
                continue
            if trial_id in recorded:
                return TrialScheduler.CONTINUE  # decided at this rung already
            vector = self._vector(result)
            if not math.isfinite(vector[0]):
                logger.warning("trial %s reported no finite %s at rung %g", trial_id, self._metrics[0], milestone)
                return TrialScheduler.CONTINUE
            recorded[trial_id] = vector
            ids = list(recorded)
            points = np.array([recorded[i] for i in ids])
            usable = np.isfinite(points).all(axis=0)  # a cost missing for any trial is left out
            points = points[:, usable]
            keep = math.ceil(len(ids) / self._rf)
            if rank_before(points, ids.index(trial_id)) < keep:
                return TrialScheduler.CONTINUE
            self.stopped.append(trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        return self.decide(trial.trial_id, float(result[self._time_attr]), result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        return None

    def debug_string(self) -> str:
        rungs = ", ".join(f"epoch {m:g}: {len(r)} ranked" for m, r in sorted(self._rungs.items()))
        return f"MultiObjectiveASHA over {', '.join(self._metrics)}: {len(self.stopped)} stopped ({rungs})"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__dict__, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__dict__.update(pickle.load(handle))
