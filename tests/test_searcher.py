"""Our searcher's trial states, driven directly (no Ray runtime needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray.tune.search import Searcher

from nas import Constraints, DefineByRun, Screen, StudySearch
from search_spaces import ArchSpec, SampleContext, SearchSpace, build_model
from studies import (
    ATTR_ERROR,
    ATTR_HISTORY,
    ATTR_SPEC,
    ATTR_WEIGHTS,
    create_study,
    open_storage,
    pareto_records,
    spent_trials,
)
from studies import trial_records as records_of
from trainers import model_cost


def make_searcher(
    tmp_path: Path, space: SearchSpace | None = None, *, objectives: tuple[str, ...] = ("dice", "gflops"), **extra: Any
) -> StudySearch:
    """A searcher on a fresh SQLite study "s" (3 epochs, random sampler, seed 0)."""
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", create=True)
    create_study(storage, "s", objectives=objectives)
    return StudySearch(
        define_by_run=DefineByRun(space or SearchSpace(), SampleContext()),
        storage=storage,
        study_name="s",
        sampler=optuna.samplers.RandomSampler(seed=0),
        epochs=3,
        objectives=objectives,
        **extra,
    )


@pytest.fixture
def searcher(tmp_path: Path) -> StudySearch:
    return make_searcher(tmp_path)


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


def test_a_spec_over_the_constraints_is_infeasible_untrained_and_steers_the_sampler(tmp_path: Path) -> None:
    space = SearchSpace(blocks=("none",), depths=(3,), base_widths=(8, 16))
    cheap = model_cost(build_model(ArchSpec(channels=(8, 16, 32))), (1, 32, 32))
    searcher = make_searcher(tmp_path, space, screen=Screen(Constraints(max_gflops=cheap.gflops * 1.01), (1, 32, 32)))
    config = searcher.suggest("a")  # whatever was sampled before, this one trains: width 8
    assert isinstance(config, dict) and config["spec"]["channels"] == [8, 16, 32]
    study = searcher._ot_study
    assert study is not None
    running = study.trials[-1]  # what the screen counted is on record while it trains
    assert running.state.name == "RUNNING" and running.user_attrs["epochs"] == 3
    assert running.user_attrs["flops"] == int(cheap.flops) and running.user_attrs["params"] == int(cheap.params)
    assert running.user_attrs["peak_memory_mb"] == pytest.approx(cheap.peak_memory_mb)
    refused = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert searcher.skipped["infeasible"] == len(refused)
    for trial in refused:  # every width-16 net: refused untrained, its violation recorded for the sampler
        assert trial.user_attrs["infeasible"] is True and "GFLOPs" in trial.user_attrs["error"]
        assert trial.constraints["cost"] > 0 and trial.values[0] == 0.0
    searcher.on_trial_complete("a", result(3, 0.5, complete=True))
    records = records_of(study)
    assert {r.state for r in records} <= {"INFEASIBLE", "COMPLETE"}
    assert [r.state for r in pareto_records(records)] == ["COMPLETE"]
    assert study.trials[-1].constraints == {"cost": 0.0}


def test_a_duplicate_reuses_the_result_and_the_budget_counts_training_only(tmp_path: Path) -> None:
    space = SearchSpace(blocks=("none",), depths=(3,), base_widths=(8,))  # a single architecture
    searcher = make_searcher(tmp_path, space, trial_budget=2)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {**result(3, 0.4, complete=True), "weights_path": "/w.pt"})
    # Every later sample is the same spec: reused, never trained, until the space counts as exhausted.
    assert searcher.suggest("b") == Searcher.FINISHED
    study = searcher._ot_study
    assert study is not None
    records = records_of(study)
    assert records[0].state == "COMPLETE" and records[1].state == "REUSED"
    assert records[1].reused_from == 0 and records[1].values == records[0].values
    assert records[1].weights_path is None and records[1].spec == records[0].spec
    assert [r.number for r in pareto_records(records)] == [0]
    assert spent_trials(records) == 1


def test_the_trial_budget_is_shared_by_every_driver_of_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    create_study(open_storage(url, create=True), "s")

    def driver() -> StudySearch:
        return StudySearch(
            define_by_run=DefineByRun(SearchSpace(), SampleContext(), replicates=2),
            storage=open_storage(url, create=False),
            study_name="s",
            sampler=optuna.samplers.RandomSampler(seed=0),
            epochs=3,
            trial_budget=3,
        )

    one, two = driver(), driver()
    assert isinstance(one.suggest("a"), dict) and isinstance(two.suggest("a"), dict)
    config = one.suggest("b")
    assert isinstance(config, dict) and config["seed"] in (0, 1)  # replicates: the training seed is sampled
    assert two.suggest("b") == Searcher.FINISHED  # three trials run: the budget is spent
    trial = one._ot_trials["b"]
    assert trial.user_attrs["seed"] == config["seed"] and trial.user_attrs["driver"]["pid"] == os.getpid()


def test_the_result_a_scheduler_stops_a_trial_on_stays_on_its_curve(searcher: StudySearch) -> None:
    searcher.suggest("a")
    searcher.on_trial_result("a", result(1, 0.2))
    searcher.on_trial_complete("a", result(2, 0.3))  # Tune sends the stopping result here only
    study = searcher._ot_study
    assert study is not None and study.trials[0].state.name == "PRUNED"
    assert [h["val_dice"] for h in study.trials[0].user_attrs[ATTR_HISTORY]] == [0.2, 0.3]


def test_the_study_objectives_choose_the_values_told(tmp_path: Path) -> None:
    searcher = make_searcher(tmp_path, objectives=("dice", "latency"))
    searcher.suggest("a")
    searcher.on_trial_complete("a", {**result(3, 0.6, complete=True), "latency": 4.5, "latency_ms": 4.5})
    (record,) = records_of(searcher._ot_study)  # type: ignore[arg-type]
    assert record.values == (0.6, 4.5) and record.objective("latency") == 4.5
    assert record.dice == 0.6 and record.gflops == pytest.approx(0.1)  # from the counted FLOPs


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random", "grid"])
def test_every_sampler_survives_rays_pickling_after_sampling(tmp_path: Path, sampler: str) -> None:
    """``tune.Tuner`` cloudpickles the searcher with its sampler (tuner.pkl): Optuna 5.1's NSGA-II
    holds a thread lock, and every default search failed with "cannot pickle '_thread.lock'"."""
    from ray import cloudpickle

    import nas

    config = nas.SearchConfig(study="pickled", trials=8, sampler=sampler, space=nas.DEMO_SPACE, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=nas.make_sampler(config))
    for _ in range(6):  # past NSGA-II's first generation, so its caches and lock are in use
        trial = study.ask()
        study.tell(trial, [trial.suggest_float("x", 0.0, 1.0), 1.0])
    copy = cloudpickle.loads(cloudpickle.dumps(study.sampler))
    trial = study.ask()  # the copy samples as the original does
    assert type(copy) is type(study.sampler)
    copy_study = optuna.create_study(directions=["maximize", "minimize"], sampler=copy)
    copy_study.add_trials(study.trials[:-1])
    assert copy_study.ask().number == trial.number
