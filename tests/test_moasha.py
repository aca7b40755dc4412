"""Multi-objective successive halving: a rung keeps a cheap front member that Dice-only ASHA stops.

The ranking is checked against a naive pure-Python non-dominated sort and NSGA-II crowding
distance written from Deb et al. (2002)."""

from __future__ import annotations

import itertools
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from nas._config import SearchConfig
from nas._moasha import MultiObjectiveASHA, crowding_distances, nondominated_ranks
from nas._search import make_scheduler
from trainers import TrainConfig


def _naive_ranks(points: list[tuple[float, ...]]) -> list[int]:
    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    ranks = [-1] * len(points)
    level, left = 0, set(range(len(points)))
    while left:
        current = {i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)}
        for i in current:
            ranks[i] = level
        left -= current
        level += 1
    return ranks


def _naive_crowding(points: list[tuple[float, ...]]) -> list[float]:
    n, k = len(points), len(points[0])
    out = [0.0] * n
    for m in range(k):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        out[order[0]] = out[order[-1]] = math.inf
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            if hi > lo and out[i] != math.inf:
                out[i] += (points[b][m] - points[a][m]) / (hi - lo)
    return out


def test_ranks_and_crowding_match_the_naive_definitions() -> None:
    rng = random.Random(3)
    for _ in range(30):
        n = rng.randint(3, 12)
        points = [(round(rng.random(), 2), round(rng.random(), 2)) for _ in range(n)]
        assert list(nondominated_ranks(np.array(points))) == _naive_ranks(points)
        front = sorted({p for p, r in zip(points, _naive_ranks(points), strict=True) if r == 0})
        if len(front) > 2:
            assert list(crowding_distances(np.array(front))) == pytest.approx(_naive_crowding(front))


def _result(dice: float, gflops: float, epoch: int = 1) -> dict:
    return {"epoch": epoch, "val_dice": dice, "gflops": gflops, "params": 1000 * gflops}


#: Three big networks reach the first rung, then a cheap one with lower Dice: on the Dice x GFLOPs
#: front (nothing is cheaper), and last on Dice.
SCENARIO = [("big1", 0.80, 10.0), ("big2", 0.82, 10.0), ("big3", 0.81, 10.0), ("cheap", 0.60, 0.5)]


def _asha() -> ASHAScheduler:
    """Ray's Dice-only ASHA as the search configured it before (stop_last_trials off)."""
    return ASHAScheduler(
        time_attr="epoch", metric="val_dice", mode="max", max_t=9, grace_period=1, reduction_factor=3,
        stop_last_trials=False,
    )  # fmt: skip


def _decisions(scheduler: TrialScheduler) -> dict[str, str]:
    out = {}
    for name, dice, gflops in SCENARIO:
        trial = SimpleNamespace(trial_id=name)
        if isinstance(scheduler, ASHAScheduler):
            scheduler.on_trial_add(None, trial)
        out[name] = scheduler.on_trial_result(None, trial, _result(dice, gflops))
    return out


def test_dice_only_asha_stops_the_cheap_front_member_and_ours_keeps_it() -> None:
    asha = _asha()
    assert _decisions(asha)["cheap"] == TrialScheduler.STOP
    ours = MultiObjectiveASHA(
        time_attr="epoch", metrics=["val_dice", "gflops"], modes=["max", "min"], max_t=9, grace_period=1
    )
    decided = _decisions(ours)
    assert decided["cheap"] == TrialScheduler.CONTINUE
    # ... and it still stops what is dominated: a fifth big network worse than every other.
    assert ours.decide("big4", 1, _result(0.5, 10.0)) == TrialScheduler.STOP
    assert ours.stopped == ["big3", "big4"]  # big3 is dominated by big2 at equal cost, as ASHA would say
    assert _decisions_asha_big3() == TrialScheduler.STOP


def _decisions_asha_big3() -> str:
    asha = _asha()
    return _decisions(asha)["big3"]


def test_the_keep_share_is_one_in_eta_for_a_single_objective() -> None:
    # With Dice alone, successive halving keeps ceil(n / eta) of the n trials at each rung.
    ours = MultiObjectiveASHA(time_attr="epoch", metrics=["val_dice"], modes=["max"], max_t=9, grace_period=1)
    kept = [ours.decide(f"t{i}", 1, {"val_dice": d}) for i, d in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])]
    # Ascending Dice arrives: every newcomer is the best so far, so all continue.
    assert set(kept) == {TrialScheduler.CONTINUE}
    low = MultiObjectiveASHA(time_attr="epoch", metrics=["val_dice"], modes=["max"], max_t=9, grace_period=1)
    decided = [low.decide(f"t{i}", 1, {"val_dice": d}) for i, d in enumerate([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])]
    ranks_kept = [math.ceil((i + 1) / 3) > i for i in range(6)]  # newcomer is last of i+1 trials
    assert decided == [TrialScheduler.CONTINUE if k else TrialScheduler.STOP for k in ranks_kept]


def test_nan_costs_are_left_out_and_max_t_is_never_stopped() -> None:
    ours = MultiObjectiveASHA(
        time_attr="epoch", metrics=["val_dice", "latency"], modes=["max", "min"], max_t=3, grace_period=1
    )
    for name, dice in itertools.islice(zip("abcdef", [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], strict=True), 6):
        ours.decide(name, 1, {"val_dice": dice, "latency": math.nan})
    assert ours.stopped == ["b", "c", "d", "e", "f"]  # by Dice alone: only the first is ahead of none
    assert ours.decide("z", 3, {"val_dice": 0.0}) == TrialScheduler.CONTINUE


def test_the_search_uses_pareto_promotion_by_default() -> None:
    config = SearchConfig(train=TrainConfig(epochs=6), grace_period=2)
    scheduler = make_scheduler(config)
    assert isinstance(scheduler, MultiObjectiveASHA)
    assert scheduler._metrics == ("val_dice", "gflops")
    dice_only = make_scheduler(SearchConfig(train=TrainConfig(epochs=6), grace_period=2, promotion="dice"))
    assert isinstance(dice_only, ASHAScheduler)
