"""A search's life as a user sees it: refusals that write nothing, Ctrl-C, resumes, dead drivers."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from nas._resume import ATTR_DRIVER, ATTR_HEARTBEAT, ATTR_RETRY_OF
from studies import create_study, open_storage, spent_trials, trial_records
from tests.conftest import REPO, nas_process

TINY = ["--image-size", "32", "--train-images", "4", "--val-images", "2", "--trials", "1", "--epochs", "1"]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def one_line_refusal(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "resumes it" not in done.stdout and "next:" not in done.stdout  # no resume hint for a refused search
    return done.stderr.strip()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "10.255.255.1:6379"])
def test_an_unreachable_address_is_refused_in_bounded_time_writing_nothing(address: str, tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    create_study(open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True), "earlier")
    before = snapshot(tmp_path)
    began = time.monotonic()
    done = nas_process("search", "--study", "s", "--out-dir", "runs", "--address", address, *TINY, cwd=tmp_path)
    took = time.monotonic() - began
    line = one_line_refusal(done)
    assert f"--address): {address!r}" in line and "HOST:PORT" in line
    assert took < 45  # Ray alone retries for minutes (45: the interpreter and torch import on a busy machine)
    assert snapshot(tmp_path) == before and list((tmp_path / "runs").iterdir()) == []


def test_an_out_dir_that_cannot_be_made_is_refused_naming_it_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder\n")
    create_study(open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True), "earlier")
    before = snapshot(tmp_path)
    done = nas_process("search", "--study", "s", "--out-dir", "afile/runs", *TINY, cwd=tmp_path)
    line = one_line_refusal(done)
    assert "--out-dir" in line and str(tmp_path / "afile") in line and "is a file, not a directory" in line
    assert snapshot(tmp_path) == before  # no study created, no WAITING trial, no folder
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'nas.db'}")] == ["earlier"]


def test_an_image_size_refused_names_the_flag_that_set_it(tmp_path: Path) -> None:
    done = nas_process("search", "--study", "s", *TINY[2:], "--image-size", "17", cwd=tmp_path)
    line = one_line_refusal(done)
    assert "data.size: 17 is not valid" in line and "(given as --image-size)" in line
    assert list(tmp_path.iterdir()) == []


def test_a_resume_conflict_names_what_changed_with_both_values(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    first = nas_process("search", "--study", "s", "--storage", url, "--out-dir", "runs", *TINY, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot(tmp_path)
    done = nas_process(
        "search", "--study", "s", "--storage", url, "--out-dir", "runs", "--data", "synthetic3d", *TINY, cwd=tmp_path
    )
    line = one_line_refusal(done)
    assert "different data.spatial_dims (2 → 3)" in line, line
    assert snapshot(tmp_path) == before


def test_the_field_a_resume_conflict_names_is_the_one_the_user_changed() -> None:
    from nas._search import resume_conflict

    before = {"data": {"kind": "synthetic", "channels": 1, "size": 64}, "space": {"depths": [3]}}
    now = {"data": {"kind": "drive", "channels": 3, "path": "/d", "size": 64}, "space": {"depths": [3]}}
    assert resume_conflict(before, now) == "data.kind ('synthetic' → 'drive')"
    assert resume_conflict(before, before) is None
    assert resume_conflict({"data": {"a": 1, "b": 1}}, {"data": {"a": 2, "b": 2}}) == "data.a (1 → 2)"
    assert resume_conflict({"objectives": ["dice", "gflops"]}, {"objectives": ["dice", "params"]}) == (
        'objectives (["dice", "gflops"] → ["dice", "params"])'
    )


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def test_ctrl_c_says_interrupted_exits_130_and_charges_nothing_it_threw_away(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    env["PYTHONPATH"] = str(REPO)
    args = ["search", "--study", "c", "--storage", url, "--out-dir", str(tmp_path / "runs"), "--concurrency", "1"]
    args += ["--image-size", "32", "--train-images", "8", "--val-images", "4", "--trials", "3", "--epochs", "500"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "nas", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: Ctrl-C in a terminal reaches the whole group
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            time.sleep(1.0)
            try:
                trials = _trials(url, "c")
            except KeyError:
                continue
            if any(t.state.name == "RUNNING" and ATTR_DRIVER in t.user_attrs for t in trials):
                time.sleep(4.0)  # let the trial train a little
                break
        assert driver.poll() is None, "the search ended before it could be interrupted"
        os.killpg(driver.pid, signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, (out[-2000:], err[-2000:])
    assert "interrupted" in err and "wall-time" not in out + err
    assert "Traceback" not in err
    trials = _trials(url, "c")
    cut = [t for t in trials if t.user_attrs.get("interrupted")]
    assert cut and all(t.state.name == "FAIL" for t in cut)
    assert not [t for t in trials if t.state.name in ("RUNNING", "PRUNED")]
    records = trial_records(optuna.load_study(study_name="c", storage=url))
    assert spent_trials(records) == sum(r.state == "COMPLETE" for r in records)  # nothing thrown away is charged
    retries = {t.user_attrs.get(ATTR_RETRY_OF) for t in trials if t.state.name == "WAITING"}
    assert {t.number for t in cut} <= retries  # and what was cut off runs first on resume


def test_a_resume_enqueues_again_the_baselines_that_failed(tmp_path: Path) -> None:
    from nas._resume import requeue_failed_starting_points

    study = create_study(open_storage(f"sqlite:///{tmp_path / 's.db'}", create=True), "s")
    baseline = {"attention.block": "none"}
    study.enqueue_trial(baseline)
    trial = study.ask()
    trial.suggest_categorical("attention.block", ["none", "pwa"])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # e.g. its Ray node died
    assert requeue_failed_starting_points(study, [baseline]) == [trial.number]
    waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [baseline]
    assert requeue_failed_starting_points(study, [baseline]) == []  # already waiting: not twice


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_status_shows_a_dead_drivers_running_trials_as_orphaned_without_writing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = create_study(open_storage(url, create=True), "s")
    for driver in ({"host": socket.gethostname(), "pid": dead_pid(), "started": 1.0}, None):
        trial = study.ask()
        trial.suggest_categorical("attention.block", ["none", "pwa"])
        if driver is not None:
            trial.set_user_attr(ATTR_DRIVER, driver)
            trial.set_user_attr(ATTR_HEARTBEAT, time.time())
        else:  # this process: alive
            from nas._resume import this_driver

            trial.set_user_attr(ATTR_DRIVER, this_driver())
    del study
    # The live trial's driver is this test process, which outlives the status command.
    done = nas_process("status", "s", "--storage", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ORPHANED 1" in done.stdout and "RUNNING 1" in done.stdout, done.stdout
    assert "trials [0] are recorded RUNNING but the driver that ran them has stopped" in done.stdout
    # (the storage's own read-only opening, WAL files included, is tested with studies/_storage.py)
    states = [t.state.name for t in _trials(url, "s")]
    assert states == ["RUNNING", "RUNNING"]  # status reconciles nothing: it only reads
