"""What users of optuna-dashboard would miss (issue 14), computed without a browser: per-objective
history, parameter importance, overlaid learning curves and the GFLOPs budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dashboards._figures import HISTORY_BEST, HISTORY_TRIALS, curves_figure, history_figure, importance_figure
from dashboards._report import unpack_report_data
from dashboards._views import (
    MIN_IMPORTANCE_TRIALS,
    curve_set,
    epsilon_squared,
    objective_history,
    param_importance,
    under_budget,
)
from studies import TrialRecord


def spec(block: str = "none", channels: tuple[int, ...] = (8, 16, 32), arrangement: str | None = None) -> dict:
    attention: dict = {"block": block, "options": {}, "placement": {} if block == "none" else {"skip": [0]}}
    if arrangement is not None:
        attention["options"] = {"arrangement": arrangement}
    return {"backbone": "unet", "spatial_dims": 2, "channels": list(channels), "attention": attention}


def rec(number: int, dice: float, gflops: float, state: str = "COMPLETE", **kw: object) -> TrialRecord:
    values = (dice, gflops) if state == "COMPLETE" else None
    return TrialRecord(number=number, state=state, values=values, flops=int(gflops * 1e9), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- per-objective history


def test_history_has_every_objective_with_the_best_so_far() -> None:
    rs = [
        rec(0, 0.50, 0.30),
        rec(1, 0.40, 0.10),
        rec(2, 0.0, 0.0, state="FAIL"),  # no values: not in the history
        rec(3, 0.70, 0.20),
        rec(4, 0.60, 0.05),
    ]
    dice, gflops = objective_history(rs)
    assert (dice.name, dice.maximize, gflops.name, gflops.maximize) == ("dice", True, "gflops", False)
    assert dice.numbers == gflops.numbers == (0, 1, 3, 4)
    assert dice.values == (0.50, 0.40, 0.70, 0.60)
    # by hand: the highest Dice so far, the lowest GFLOPs so far
    assert dice.best == (0.50, 0.50, 0.70, 0.70)
    assert gflops.best == pytest.approx((0.30, 0.10, 0.10, 0.05))
    fig = history_figure((dice, gflops))
    best = [t for t in fig.data if t.name == HISTORY_BEST]
    trials = [t for t in fig.data if t.name == HISTORY_TRIALS]
    assert [t.meta for t in best] == ["dice", "gflops"] and [t.meta for t in trials] == ["dice", "gflops"]
    assert list(best[1].y) == pytest.approx([0.30, 0.10, 0.10, 0.05]) and best[0].line.shape == "hv"


def test_history_follows_the_study_objectives() -> None:
    objectives = ("dice", "latency")
    rs = [
        TrialRecord(number=i, state="COMPLETE", values=(d, lat), objectives=objectives)
        for i, (d, lat) in enumerate([(0.5, 9.0), (0.6, 12.0), (0.4, 3.0)])
    ]
    names = [h.name for h in objective_history(rs)]
    assert names == ["dice", "latency"] and objective_history(rs)[1].best == (9.0, 9.0, 3.0)


# ---------------------------------------------------------------- parameter importance


@pytest.mark.parametrize("seed", range(4))
def test_epsilon_squared_matches_scipy_anova(seed: int) -> None:
    """ε² from scipy's one-way ANOVA F: (F − 1)(k − 1) / (F(k − 1) + N − k), an independent formula."""
    rng = np.random.default_rng(seed)
    groups = [rng.normal(mu, 1.0, size) for mu, size in ((0.0, 7), (0.8, 5), (0.3, 9))]
    f, _ = stats.f_oneway(*groups)
    k, n = len(groups), sum(len(g) for g in groups)
    expected = max(0.0, (f - 1) * (k - 1) / (f * (k - 1) + n - k))
    assert epsilon_squared(groups) == pytest.approx(expected)
    assert epsilon_squared([[1.0, 2.0], [1.5, 1.5]]) == 0.0  # explains less than chance: clipped
    assert epsilon_squared([[1.0], [2.0]]) == 0.0  # every trial its own group


def test_importance_finds_the_choice_that_decides_the_objective() -> None:
    rng = np.random.default_rng(0)
    rs = []
    for i in range(40):
        block = ("none", "se", "pwa")[i % 3]
        channels = ((8, 16, 32), (16, 32, 64))[(i // 3) % 2]
        dice = {"none": 0.5, "se": 0.7, "pwa": 0.6}[block] + rng.normal(0, 0.01)  # the block decides Dice
        gflops = channels[0] * 0.01 + rng.normal(0, 0.001)  # the width decides GFLOPs
        rs.append(rec(i, dice, gflops, spec=spec(block, channels)))
    rs.append(rec(40, 0.0, 0.0, state="PRUNED", spec=spec("se")))  # not COMPLETE: not counted
    dice = param_importance(rs, "dice")
    gflops = param_importance(rs, "gflops")
    assert dice.n == gflops.n == 40 and dice.enough
    assert dice.importances[0][0] == "attention.block" and dice.importances[0][1] > 0.95
    assert dict(dice.importances)["spec.channels"] < 0.05
    assert gflops.importances[0][0] == "spec.channels" and gflops.importances[0][1] > 0.95
    assert "spec.backbone" not in dict(dice.importances)  # the same in every trial: no importance
    groups: dict[str, list[float]] = {}
    for r in rs[:40]:
        groups.setdefault(r.spec["attention"]["block"], []).append(r.dice)  # type: ignore[index]
    assert dict(dice.importances)["attention.block"] == pytest.approx(epsilon_squared(list(groups.values())))
    fig = importance_figure((dice, gflops))
    assert [t.meta for t in fig.data] == ["dice", "gflops"]
    assert list(fig.data[0].y)[-1] == "attention.block"  # the largest on top


def test_importance_says_how_many_trials_it_needs() -> None:
    rs = [rec(i, 0.5 + i / 100, 0.1, spec=spec(("none", "se")[i % 2])) for i in range(MIN_IMPORTANCE_TRIALS - 1)]
    result = param_importance(rs, "dice")
    assert not result.enough and result.importances == () and result.n == MIN_IMPORTANCE_TRIALS - 1
    fig = importance_figure((result,))
    assert f"needs ≥ {MIN_IMPORTANCE_TRIALS} complete trials (has {MIN_IMPORTANCE_TRIALS - 1})" in [
        a.text for a in fig.layout.annotations
    ]


def test_a_field_a_trial_lacks_is_its_own_category() -> None:
    rs = [rec(i, 0.6 if i % 2 else 0.5, 0.1, spec=spec("joint", arrangement="parallel") if i % 2 else spec("se"))
          for i in range(12)]  # fmt: skip
    result = dict(param_importance(rs, "dice").importances)
    assert result["attention.arrangement"] == pytest.approx(result["attention.block"])
    assert result["attention.block"] > 0.9


# ---------------------------------------------------------------- overlaid learning curves


def test_curve_set_names_trials_not_keys() -> None:
    history = ({"epoch": 1, "val_dice": 0.4, "loss": 0.9}, {"epoch": 2, "val_dice": 0.55, "loss": 0.7})
    rs = [
        rec(3, 0.55, 0.1, history=history, label="se unet 8-16-32"),
        rec(5, 0.50, 0.1, history=history[:1], label="none unet 8-16-32"),
        rec(6, 0.50, 0.1),  # no curve
    ]
    curves = curve_set(rs, [5, 3, 6, 99])
    assert [c[0] for c in curves.curves] == ["trial 5 · none unet 8-16-32", "trial 3 · se unet 8-16-32"]
    assert curves.curves[1][1:] == ((1.0, 2.0), (0.4, 0.55))
    assert curves.missing == (6, 99)
    fig = curves_figure(curves)
    assert [t.name for t in fig.data] == ["trial 5 · none unet 8-16-32", "trial 3 · se unet 8-16-32"]
    assert fig.layout.yaxis.title.text == "validation Dice" and "val_dice" not in fig.to_json()


# ---------------------------------------------------------------- GFLOPs budget


def test_under_budget_keeps_trials_at_or_below_it() -> None:
    rs = [rec(0, 0.5, 0.1), rec(1, 0.6, 0.2), rec(2, 0.7, 0.3), TrialRecord(number=3, state="FAIL")]
    assert [r.number for r in under_budget(rs, 0.2)] == [0, 1]
    assert [r.number for r in under_budget(rs, None)] == [0, 1, 2, 3]
    assert math.isclose(max(r.gflops or 0 for r in under_budget(rs, 0.25)), 0.2)


# ---------------------------------------------------------------- the offline report carries both


def test_the_report_carries_the_history_and_the_importance() -> None:
    from dashboards import report_html

    rng = np.random.default_rng(1)
    rs = [rec(i, 0.5 + 0.2 * (i % 2) + rng.normal(0, 0.01), 0.1 + i / 100, spec=spec(("none", "se")[i % 2]))
          for i in range(12)]  # fmt: skip
    figures = unpack_report_data(report_html("r", rs, storage="sqlite:////x/nas.db"))["figures"]
    best = [t for t in figures["history"]["data"] if t["name"] == HISTORY_BEST]
    assert [t["meta"] for t in best] == ["dice", "gflops"]
    bars = {t["meta"]: t for t in figures["importance"]["data"]}
    assert set(bars) == {"dice", "gflops"} and bars["dice"]["y"][-1] == "attention.block"


# ---------------------------------------------------------------- notes in the storage


def test_notes_are_saved_as_study_attributes_and_never_overwrite_a_change(tmp_path: object) -> None:
    import optuna

    from dashboards._notes import note_key, read_note, write_note
    from studies import open_storage
    from tests._studyfactory import make_study

    url = f"sqlite:///{tmp_path}/notes.db"
    storage = open_storage(url, create=True)
    make_study(storage, "s")
    before = optuna.load_study(study_name="s", storage=url)
    trial_attrs = {t.number: dict(t.user_attrs) for t in before.trials}
    study_attrs = dict(before.user_attrs)
    assert read_note(storage, "s") == read_note(storage, "s", 1) == ""
    assert write_note(storage, "s", None, "baseline run", expected="").ok
    saved = write_note(storage, "s", 1, "best so far\nretrain with 3 seeds", expected="")
    assert saved.ok and saved.text == "best so far\nretrain with 3 seeds"
    after = optuna.load_study(study_name="s", storage=url)
    assert after.user_attrs == {**study_attrs, "note": "baseline run", note_key(1): "best so far\nretrain with 3 seeds"}
    assert {t.number: dict(t.user_attrs) for t in after.trials} == trial_attrs  # the trials are untouched
    # someone else saves meanwhile: a save from the stale page is refused and their note kept
    assert write_note(storage, "s", 1, "theirs", expected="best so far\nretrain with 3 seeds").ok
    stale = write_note(storage, "s", 1, "mine", expected="best so far\nretrain with 3 seeds")
    assert not stale.ok and "changed elsewhere" in stale.message and stale.text == "theirs"
    assert read_note(storage, "s", 1) == "theirs"
    too_long = write_note(storage, "s", None, "x" * 20_001, expected="baseline run")
    assert not too_long.ok and read_note(storage, "s") == "baseline run"
