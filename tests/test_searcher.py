"""Our searcher's trial states, driven directly (no Ray runtime needed)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas import DefineByRun, StudySearch
from search_spaces import ArchSpec, SampleContext, SearchSpace
from studies import (
    ATTR_ERROR,
    ATTR_HISTORY,
    ATTR_SPEC,
    ATTR_WEIGHTS,
    create_study,
    open_storage,
    pareto_records,
)
from studies import trial_records as records_of


@pytest.fixture
def searcher(tmp_path: Path) -> StudySearch:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", create=True)
    create_study(storage, "s")
    return StudySearch(
        define_by_run=DefineByRun(SearchSpace(), SampleContext()),
        storage=storage,
        study_name="s",
        sampler=optuna.samplers.RandomSampler(seed=0),
        epochs=3,
    )


def result(epoch: int, dice: float, *, complete: bool = False) -> dict:
    return {
        "epoch": epoch,
        "val_dice": dice,
        "dice": dice,
        "gflops": 0.1,
        "flops": 10**8,
        "params": 99,
        "complete": complete,
    }


def test_suggest_records_the_spec_and_passes_it_to_the_trial(searcher: StudySearch) -> None:
    config = searcher.suggest("a")
    spec = ArchSpec.from_dict(config["spec"])
    assert config["trial_number"] == 0
    trial = searcher._ot_study.trials[0]  # type: ignore[union-attr]
    assert trial.user_attrs[ATTR_SPEC] == spec.to_dict()


def test_full_budget_is_complete_with_values_and_attributes(searcher: StudySearch) -> None:
    searcher.suggest("a")
    for epoch in (1, 2, 3):
        searcher.on_trial_result("a", result(epoch, 0.1 * epoch))
    final = {
        **result(3, 0.3, complete=True),
        "weights_path": "/w.pt",
        "val_dice_history": [0.1, 0.2, 0.3],
        "loss_history": [1.0, 0.9, 0.8],
        "best_epoch": 3,
    }
    searcher.on_trial_complete("a", final)
    (record,) = records_of(searcher._ot_study)  # type: ignore[arg-type]
    assert record.state == "COMPLETE" and record.values == (0.3, 0.1)
    assert record.weights_path == "/w.pt" and record.flops == 10**8 and record.params == 99
    assert [h["val_dice"] for h in record.history] == [0.1, 0.2, 0.3]


def test_a_trial_stopped_early_is_pruned_and_never_on_the_front(searcher: StudySearch) -> None:
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_result("a", result(1, 0.9))  # looks great, but only one epoch ran
    searcher.on_trial_complete("a", result(1, 0.9))
    searcher.on_trial_complete("b", result(3, 0.4, complete=True))
    study = searcher._ot_study
    assert study is not None
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "PRUNED", 1: "COMPLETE"}
    assert study.trials[0].user_attrs[ATTR_HISTORY] == [{"epoch": 1, "val_dice": 0.9}]
    assert [r.number for r in pareto_records(records_of(study))] == [1]


def test_failures_keep_their_error_text(searcher: StudySearch) -> None:
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {"failed": True, "error": "FloatingPointError: non-finite loss"})
    searcher.on_trial_complete("b", None, error=True)
    study = searcher._ot_study
    assert study is not None
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert "non-finite" in study.trials[0].user_attrs[ATTR_ERROR]
    assert "worker" in study.trials[1].user_attrs[ATTR_ERROR]
    assert ATTR_WEIGHTS not in study.trials[0].user_attrs


def test_nan_objective_is_a_failure_not_a_result(searcher: StudySearch) -> None:
    searcher.suggest("a")
    searcher.on_trial_complete("a", {**result(3, float("nan"), complete=True)})
    assert searcher._ot_study is not None and searcher._ot_study.trials[0].state.name == "FAIL"
