"""Resuming a study: orphaned RUNNING trials are reconciled, and a SIGKILLed search continues."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from nas import ATTR_DRIVER, ATTR_HEARTBEAT, STALE_AFTER_S, Heartbeat, reconcile_orphans, this_driver
from nas.cli import main
from studies import create_study, open_storage, spent_trials, trial_records


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", create=True)
    return create_study(storage, "s")


def running(study: optuna.Study, driver: dict | None, heartbeat: float | None) -> int:
    trial = study.ask()
    trial.suggest_categorical("attention.block", ["none", "pwa"])
    if driver is not None:
        trial.set_user_attr(ATTR_DRIVER, driver)
    if heartbeat is not None:
        trial.set_user_attr(ATTR_HEARTBEAT, heartbeat)
    return trial.number


def test_only_the_trials_of_a_dead_driver_are_orphaned_and_retried(study: optuna.Study) -> None:
    now = time.time()
    alive_here = running(study, this_driver(), now)
    dead_here = running(study, {"host": socket.gethostname(), "pid": dead_pid(), "started": 1.0}, now)
    alive_elsewhere = running(study, {"host": "node-7", "pid": 1, "started": 1.0}, now)
    stale_elsewhere = running(study, {"host": "node-7", "pid": 2, "started": 1.0}, now - STALE_AFTER_S - 1)
    reconciled = reconcile_orphans(study)
    assert set(reconciled.orphans) == {dead_here, stale_elsewhere}
    states = {t.number: t.state.name for t in study.trials}
    assert states[alive_here] == states[alive_elsewhere] == "RUNNING"
    assert states[dead_here] == states[stale_elsewhere] == "FAIL"
    orphan = study.trials[dead_here]
    assert orphan.user_attrs["orphaned"] is True and "orphaned: the driver" in orphan.user_attrs["error"]
    waiting = [t for t in study.trials if t.state.name == "WAITING"]
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == sorted(reconciled.orphans)
    assert study.trials[waiting[0].number].system_attrs["fixed_params"] == {
        "attention.block": study.trials[waiting[0].user_attrs["retry_of"]].params["attention.block"]
    }
    assert spent_trials(trial_records(study)) == 2  # the two live trials; orphans do not spend the budget


def test_the_heartbeat_refreshes_this_drivers_trials_only(study: optuna.Study) -> None:
    mine = running(study, this_driver(), 0.0)
    theirs = running(study, {"host": "node-7", "pid": 1, "started": 1.0}, 0.0)
    with Heartbeat(study, every_s=0.05) as beat:
        time.sleep(0.3)
        assert beat.beat() == 1
    assert study.trials[mine].user_attrs[ATTR_HEARTBEAT] > time.time() - 5
    assert study.trials[theirs].user_attrs[ATTR_HEARTBEAT] == 0.0


def counts(url: str) -> tuple[Counter[str], set[int]]:
    study = optuna.load_study(study_name="resumed", storage=url)
    trials = study.get_trials(deepcopy=False)
    return Counter(t.state.name for t in trials), {t.number for t in trials if t.state.name == "COMPLETE"}


def test_a_search_killed_with_sigkill_resumes_without_losing_or_orphaning_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = tmp_path / "study.yaml"
    config.write_text(
        f"""
name: resumed
storage: {url}
data: {{kind: synthetic, size: 32, n_train: 48, n_val: 8}}
space: {{blocks: [none, pwa, sa], options: {{sa.similarity: [dot]}}, depths: [3], base_widths: [8, 16]}}
budget: {{trials: 5}}
fidelity: {{epochs: 12}}
concurrency: 2
out_dir: {tmp_path / "runs"}
"""
    )
    driver = subprocess.Popen(
        [sys.executable, "-m", "nas", "search", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        before: Counter[str] = Counter()
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.5)
            try:
                before, _ = counts(url)
            except KeyError:  # the study does not exist yet
                continue
            if before["COMPLETE"] >= 1 and before["RUNNING"] >= 1:
                break
        assert driver.poll() is None, "the search finished before it could be killed; make its trials longer"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    before, complete_before = counts(url)
    assert before["RUNNING"] >= 1

    assert main(["search", str(config)]) == 0

    after, complete_after = counts(url)
    records = trial_records(optuna.load_study(study_name="resumed", storage=url))
    assert after["RUNNING"] == 0 and after["WAITING"] == 0
    assert complete_before <= complete_after  # no COMPLETE trial lost
    orphans = [r for r in records if r.orphaned]
    assert len(orphans) == before["RUNNING"]  # every trial running at the kill, and only those
    assert all(r.state == "FAIL" for r in orphans)
    assert spent_trials(records) == 5  # the budget counts what trained, across both runs
    trials = optuna.load_study(study_name="resumed", storage=url).trials
    retried = sorted(t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs)
    assert retried == sorted(r.number for r in orphans)  # each orphaned architecture was run again


def test_a_trial_whose_driver_died_before_naming_itself_is_orphaned_after_a_grace(
    study: optuna.Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    nameless = running(study, None, None)  # asked, then the driver died before its next commit
    assert reconcile_orphans(study).orphans == ()  # a live driver names itself within milliseconds
    monkeypatch.setattr("nas._resume.ASK_GRACE_S", 0.0)
    assert reconcile_orphans(study).orphans == (nameless,)
    assert study.trials[nameless].state.name == "FAIL"


def test_a_study_recorded_before_newer_space_fields_still_resumes() -> None:
    from nas._search import _comparable
    from search_spaces import SearchSpace

    current = SearchSpace().to_dict()
    older = {k: v for k, v in current.items() if k not in ("level_choice", "extra_blocks", "extra_placements")}
    assert _comparable({"space": older}) == _comparable({"space": current})
    assert _comparable({"space": {**current, "depths": [3]}}) != _comparable({"space": current})


def test_a_study_recorded_before_newer_train_fields_still_resumes() -> None:
    """A study of 2026-11 recorded ``step_every`` and no warm-up, TTA, step fraction or λ; resumed
    with today's equivalent recipe (warm-up 0, no TTA) it compares equal; a real change does not."""
    from dataclasses import asdict

    from nas._search import _comparable
    from trainers import TrainConfig

    today = asdict(TrainConfig(warmup_fraction=0.0))
    older = {k: v for k, v in today.items() if k not in ("warmup_fraction", "tta", "step_fraction", "l2_weight")}
    older["step_every"] = 100
    assert _comparable({"train": older}) == _comparable({"train": today})
    assert _comparable({"train": older}) != _comparable({"train": asdict(TrainConfig())})  # the warm-up
    stepped = {**older, "schedule": "step"}
    assert _comparable({"train": stepped}) != _comparable({"train": {**today, "schedule": "step"}})
    assert _comparable({"train": {**older, "loss": "bce_l2"}}) != _comparable({"train": {**today, "loss": "bce_l2"}})
