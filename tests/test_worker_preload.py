"""A search's trials start in the workers its Ray runtime started (and preloaded) with it, not in
workers started for each trial actor after the trial was asked for (issue 15: 8.7 s of a tiny
search's slots went to starting the first two actors)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import nas
from nas import _search
from trainers import SegmentationData, SyntheticConfig, TrainConfig


def probe_trial(
    config: dict[str, Any],
    *,
    data: SegmentationData,
    train_config: TrainConfig,
    artifact_dir: str,
    threads: int,
) -> None:
    """Write down which process ran the trial and what it had imported on entry, then report a
    complete result (the keys ``run_trial`` reports)."""
    import psutil
    from ray import tune

    entered = {
        "pid": os.getpid(),
        "process_started_at": psutil.Process().create_time(),
        "preloaded": "nas._worker" in sys.modules,
    }
    number = int(config["trial_number"])
    Path(artifact_dir, f"probe-{number}.json").write_text(json.dumps(entered))
    tune.report(
        {
            "complete": True,
            "epoch": 1,
            "dice": 0.5 + number / 100,
            "val_dice": 0.5,
            "gflops": 1.0 + number,
            "flops": 10**9,
            "params": 10,
            "latency": 1.0,
            "memory": 1.0,
            "peak_memory_mb": 1.0,
            "val_dice_history": [0.5],
            "loss_history": [0.5],
            "train_seconds": 0.0,
        }
    )


def run_probed_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[float, list[dict[str, Any]]]:
    import ray

    # Whatever this machine's cores: the runtime's prestarted workers import the trial's modules.
    monkeypatch.setattr(_search, "PRELOAD_WORKERS_PER_TRIAL", 10**6)
    config = nas.SearchConfig(
        study="preload",
        storage=f"sqlite:///{tmp_path / 'nas.db'}",
        trials=2,
        concurrency=2,
        train=TrainConfig(epochs=1),
        data=SyntheticConfig(n_train=4, n_val=2, size=16),
        out_dir=tmp_path / "runs",
        confirm_members=0,
    )
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    nas.start_local_ray(config)  # the runtime run_search would start, before the search asks for a trial
    try:
        time.sleep(3)  # a real driver opens the study meanwhile
        asked_from = time.time()
        outcome = nas.run_search(config, trainable=probe_trial)
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert [r.state for r in outcome.records] == ["COMPLETE", "COMPLETE"]
    probes = [json.loads(p.read_text()) for p in sorted(config.study_dir.glob("probe-*.json"))]
    return asked_from, probes


def test_a_searchs_trials_run_in_the_workers_its_runtime_started_and_preloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked_from, probes = run_probed_search(tmp_path, monkeypatch)
    assert len(probes) == 2
    for probe in probes:
        assert probe["preloaded"], probe  # the runtime's workers imported nas._worker as they started
        # ... and the trial ran in one of them: a process older than the search, not one started for it.
        assert probe["process_started_at"] < asked_from, probe


def test_without_a_preload_the_runtime_config_names_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    config = nas.SearchConfig(study="x", concurrency=2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert _search._preload_config(config)["preload_python_modules"] == ["nas._worker"]
    # Many more CPUs than trials: Ray starts a worker per CPU, each would hold torch and MONAI.
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert _search._preload_config(config) == {}
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    # Tune gives its trial actors these variables: they would start workers of their own.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    assert _search._preload_config(config) == {}
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("RAY_preload_python_modules", "mine")  # the user's own choice stands
    assert _search._preload_config(config) == {}


def test_tunes_trial_actor_environment_is_restored_after_the_search() -> None:
    from ray.tune.execution import class_cache

    before = dict(class_cache.DEFAULT_ENV_VARS)
    with _search._plain_trial_actors():
        assert class_cache.DEFAULT_ENV_VARS == {}
    assert before == class_cache.DEFAULT_ENV_VARS
