"""``concurrency: auto``: as many trials at once as the Ray cluster's CPUs (and GPUs) hold, so no
core or device idles while trials wait (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas import ConfigError, SearchConfig, search_config
from tests.test_studyfile import write

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("cpus", "gpus", "resources", "slots"),
    [
        (1.0, 0.0, {"CPU": 16.0}, 16),  # more cores than the default 2 trials: all of them
        (4.0, 0.0, {"CPU": 16.0}, 4),
        (3.0, 0.0, {"CPU": 16.0}, 5),  # whole trials only
        (1.0, 0.25, {"CPU": 16.0, "GPU": 1.0}, 4),  # four trials share the device
        (1.0, 0.1, {"CPU": 64.0, "GPU": 3.0}, 30),  # 3 / 0.1 in floating point is 29.999...
        (8.0, 0.25, {"CPU": 16.0, "GPU": 1.0}, 2),  # the CPUs bind first
        (1.0, 0.0, {"CPU": 0.5}, 1),  # never none
    ],
)
def test_auto_fills_the_cluster_with_whole_trials(cpus: float, gpus: float, resources: dict, slots: int) -> None:
    config = SearchConfig(study="x", concurrency="auto", cpus_per_trial=cpus, gpus_per_trial=gpus)
    assert config.slots(resources) == slots
    assert SearchConfig(study="x", concurrency=3).slots(resources) == 3  # a number is a number


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, True])
def test_a_concurrency_that_is_neither_a_count_nor_auto_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=r"--concurrency: .* expected a positive integer or auto"):
        SearchConfig(study="x", concurrency=value)  # type: ignore[arg-type]


def test_a_study_file_says_auto_or_a_positive_count(tmp_path: Path) -> None:
    assert search_config(write(tmp_path, "concurrency: auto\n")).concurrency == "auto"
    with pytest.raises(ConfigError, match=r"concurrency: Input should be a positive integer or 'auto' \(got 0\)$"):
        search_config(write(tmp_path, "concurrency: 0\n"))


def _nas(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "nas", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )


def test_nas_search_concurrency_auto_runs_as_many_trials_at_once_as_the_machines_cores_hold(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    cores = os.cpu_count() or 1
    args = ["search", "--study", "auto", "--storage", url, "--concurrency", "auto", "--trials", "2", "--epochs", "1"]
    args += ["--cpus-per-trial", "2"] if cores >= 2 else []  # 2 cores: 1 at a time, not the default 2
    args += ["--image-size", "32", "--train-images", "8", "--val-images", "4", "--set", "confirm.members=0"]
    done = _nas(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    slots = max(1, cores // 2) if cores >= 2 else 1
    assert f"2 of 2 trials to run, {slots} at a time" in done.stdout + done.stderr


def test_nas_search_refuses_a_concurrency_that_is_not_a_count_or_auto(tmp_path: Path) -> None:
    done = _nas(tmp_path, "search", "--concurrency", "lots", "--storage", f"sqlite:///{tmp_path / 'nas.db'}")
    assert done.returncode == 2
    assert "--concurrency: 'lots' is not valid; expected a positive integer or auto" in done.stderr
    assert not (tmp_path / "nas.db").exists()
