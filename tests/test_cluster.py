"""Searches on shared infrastructure: a real two-node Ray cluster, a worker killed mid-trial, and two
``nas search`` processes on one PostgreSQL study."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psutil
import pytest
import sqlalchemy.exc

from nas.cli import main
from studies import spent_trials, trial_records
from tests.conftest import postgres_database

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def study_file(tmp_path: Path, storage: str, **extra: str) -> Path:
    lines = "\n".join(f"{key}: {value}" for key, value in extra.items())
    path = tmp_path / "study.yaml"
    path.write_text(
        f"""
name: shared
storage: {storage}
data: {{kind: synthetic, size: 32, n_train: 16, n_val: 8}}
space: {{blocks: [none, pwa, sa], options: {{sa.similarity: [dot]}}, depths: [3], base_widths: [8, 16]}}
out_dir: {tmp_path / "runs"}
{lines}
"""
    )
    return path


def processes_of_cluster(markers: tuple[str, ...]) -> list[psutil.Process]:
    """The processes of one test's Ray cluster: those whose command line names one of ``markers``
    (its own temp dir, its GCS address), and all their descendants (Ray renames its workers
    ``ray::IDLE`` and the like, which drops the arguments, but they stay the raylet's children)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            line = " ".join(proc.info["cmdline"] or ())
            if proc.pid != os.getpid() and any(re.search(marker, line) for marker in markers):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


def stop_cluster_processes(markers: tuple[str, ...], grace_s: float = 15) -> list[int]:
    """Stop, by PID, only the processes :func:`processes_of_cluster` finds: SIGTERM, then SIGKILL for
    those still alive after ``grace_s``. Unlike ``ray stop``, which ends every Ray process on the host
    (a user's search beside the test suite included), nothing else is touched. Returns the PIDs."""
    procs = processes_of_cluster(markers)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    return [proc.pid for proc in procs]


def cluster_markers(temp_dir: str, port: int) -> tuple[str, ...]:
    """What the command lines of one cluster's processes, and no other's, contain."""
    return (re.escape(temp_dir), rf"127\.0\.0\.1:{port}(?!\d)", rf"--gcs_server_port={port}(?!\d)")


@pytest.fixture
def two_node_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``ray start --head`` plus a second ``ray start --address`` node, one CPU each, on this machine,
    with their own temp dir and port; afterwards exactly their processes are stopped, by PID.

    The nodes and this driver must agree on Ray's authentication mode. Ray 2.60's ``ray start
    --head`` turns token authentication on when ``RAY_AUTH_MODE`` is unset and ``~/.ray/auth_token``
    exists, but a joining ``ray start --address`` does not, and is refused. A local ``ray.init()``
    earlier in this process sets ``RAY_AUTH_MODE=token`` (and caches it), so a mode already set is
    inherited; otherwise the nodes and this driver all run with authentication disabled."""
    if "RAY_AUTH_MODE" not in os.environ:
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="nas-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    head = [RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    try:
        subprocess.run(
            [*head, f"--temp-dir={temp_dir}", "--disable-usage-stats"], check=True, capture_output=True, timeout=120
        )
        subprocess.run(
            [RAY, "start", f"--address={address}", "--num-cpus=1", "--disable-usage-stats"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield address
    finally:
        stop_cluster_processes(cluster_markers(temp_dir, port))
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_the_cluster_teardown_stops_only_its_own_processes(tmp_path: Path) -> None:
    """``ray stop --force`` matches Ray processes by name (``raylet``, ``default_worker.py``, ...) on
    the whole host; the teardown must stop what its cluster started and leave a bystander alone."""
    temp_dir = str(tmp_path / "nas-ray-mine")
    sleeper = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"
    )
    ours = subprocess.Popen([sys.executable, "-c", sleeper, "raylet", f"--temp_dir={temp_dir}"])
    # Another user's Ray worker, as `ray stop` recognises one (its filter: "default_worker.py" in the arguments).
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "default_worker.py", "--gcs-address=127.0.0.1:1"]
    )
    try:
        deadline = time.monotonic() + 60
        while len(psutil.Process(ours.pid).children()) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        child = psutil.Process(ours.pid).children()[0]
        stopped = stop_cluster_processes(cluster_markers(temp_dir, free_port()), grace_s=10)
        assert sorted(stopped) == sorted([ours.pid, child.pid])
        assert ours.wait(timeout=10) is not None and not child.is_running()
        assert bystander.poll() is None, "the teardown stopped a process that was not its cluster's"
    finally:
        for proc in (ours, bystander):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_a_search_attached_to_a_two_node_cluster_places_trials_on_both_nodes(
    tmp_path: Path, two_node_cluster: str
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = study_file(tmp_path, url, budget="{trials: 4}", fidelity="{epochs: 4}", concurrency="2")
    assert main(["search", str(config), "--address", two_node_cluster, "--cpus-per-trial", "1"]) == 0
    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    nodes = {t.user_attrs["worker"]["node_id"] for t in trials}
    assert len(nodes) == 2, f"every trial ran on one node: {nodes}"  # two 1-CPU nodes, two trials at a time


def test_a_worker_killed_mid_trial_is_recorded_fail_and_the_search_finishes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = study_file(tmp_path, url, budget="{trials: 3}", fidelity="{epochs: 40}", concurrency="1")
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                study = optuna.load_study(study_name="shared", storage=url)
            except (KeyError, sqlalchemy.exc.OperationalError):  # no study yet; its tables being created
                continue
            for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                worker = trial.user_attrs.get("worker")
                if worker and worker.get("pid"):
                    os.kill(int(worker["pid"]), signal.SIGKILL)
                    killed.append(trial.number)
                    return

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    assert main(["search", str(config)]) == 0
    killer.join(timeout=5)
    assert killed, "no running trial was seen to kill"
    records = {r.number: r for r in trial_records(optuna.load_study(study_name="shared", storage=url))}
    victim = records[killed[0]]
    assert victim.state == "FAIL" and victim.error is not None and "worker" in victim.error
    assert all(r.state != "RUNNING" for r in records.values())
    assert sum(r.state == "COMPLETE" for r in records.values()) == 2  # the search went on and finished


def test_two_search_processes_share_one_postgresql_study(tmp_path: Path) -> None:
    for url in postgres_database():
        config = study_file(tmp_path, url, budget="{trials: 4}", fidelity="{epochs: 3}", concurrency="1")
        drivers = [
            subprocess.Popen(
                [sys.executable, "-m", "nas", "search", str(config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [d.communicate(timeout=400)[0] for d in drivers]
        assert [d.returncode for d in drivers] == [0, 0], outputs
        study = optuna.load_study(study_name="shared", storage=url)
        records = trial_records(study)
        assert all(r.state not in ("RUNNING", "WAITING") for r in records)
        # The budget is shared: each driver stops once the study has spent it (a driver that asked
        # at the same moment as the other may add one trial).
        assert 4 <= spent_trials(records) <= 5
        pids = {t.user_attrs["driver"]["pid"] for t in study.trials if "driver" in t.user_attrs}
        assert len(pids) == 2, "one driver did all the work"
        assert sum(r.state == "COMPLETE" for r in records) >= 4
