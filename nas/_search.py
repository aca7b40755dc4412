"""Running a search: Optuna samples, Ray Tune runs the trials, the study records everything."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from nas._config import SearchConfig
from nas._searcher import DefineByRun, StudySearch
from nas._trainable import run_trial
from search_spaces import SampleContext
from studies import TrialRecord, create_study, open_storage, pareto_records, redact, trial_records
from studies import parse_storage_url as _parse_url
from trainers import load_data

logger = logging.getLogger(__name__)

#: ``on_event(message)``: progress lines for whoever owns the terminal.
OnEvent = Callable[[str], None]


@dataclass(frozen=True)
class SearchOutcome:
    """Where a finished search put its results, and what they are."""

    study: str
    storage: str
    study_dir: str
    records: list[TrialRecord]
    pareto: list[TrialRecord]
    seconds: float


def _make_sampler(config: SearchConfig) -> optuna.samplers.BaseSampler:
    # TPE handles multi-objective problems and learns from few trials; its random start-up phase
    # covers the space before it models it.
    startup = max(4, min(10, config.trials // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup, multivariate=True, group=True)


def _progress_callback(total: int, on_event: OnEvent | None) -> Any:
    from ray.tune import Callback

    class _Progress(Callback):
        def __init__(self) -> None:
            self.done = 0

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.done += 1
            result = trial.last_result or {}
            number = trial.config.get("trial_number", "?")
            if result.get("infeasible"):
                status = "refused untrained: " + str(result.get("error", ""))
            elif result.get("failed"):
                status = "FAILED: " + str(result.get("error", "")).splitlines()[0]
            elif result.get("complete"):
                status = f"dice={result['dice']:.4f}  gflops={result['gflops']:.4f}"
            else:
                status = "stopped early"
            if on_event:
                on_event(f"[{self.done}/{total}] trial {number}: {status}")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.done += 1
            if on_event:
                on_event(
                    f"[{self.done}/{total}] trial {trial.config.get('trial_number', '?')}: ERROR (see the Ray logs)"
                )

    return _Progress()


def _init_ray(config: SearchConfig) -> bool:
    """Attach to ``config.address`` or start an embedded local runtime; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    # Ray's own start-up chatter is not the user's business; trial errors reach them through the study.
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if config.address:
        ray.init(address=config.address, **common)
    else:
        ray.init(include_dashboard=False, **common)
    return True


def run_search(config: SearchConfig, on_event: OnEvent | None = None) -> SearchOutcome:
    """Run ``config.trials`` trials and record them in a new study; returns where everything went."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    started = time.perf_counter()
    storage = open_storage(config.storage, create=True)
    data = load_data(config.data)  # every check of the files runs here, before the study exists
    attrs = config.study_attrs(data.input_shape)
    if data.split is not None:  # every trial of the study sees the same cases
        attrs["split"] = {part: list(ids) for part, ids in data.split.items()}
    create_study(storage, config.study, attrs=attrs)
    config.study_dir.mkdir(parents=True, exist_ok=True)
    shown = redact(_parse_url(config.storage))
    if on_event:
        on_event(f"study {config.study} in {shown}; {config.trials} trials, {config.concurrency} at a time")

    context = SampleContext(spatial_dims=data.spatial_dims, in_channels=data.in_channels, out_channels=data.num_classes)
    searcher = StudySearch(
        define_by_run=DefineByRun(config.space, context),
        storage=storage,
        study_name=config.study,
        sampler=_make_sampler(config),
        epochs=config.train.epochs,
        keep_top=config.keep_top,
    )
    started_ray = _init_ray(config)
    try:
        trainable = tune.with_parameters(
            run_trial,
            data=data,
            train_config=config.train,
            artifact_dir=str(config.study_dir),
            threads=config.threads_per_trial,
            max_memory_mb=config.max_memory_mb,
        )
        resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=config.concurrency),
                num_samples=config.trials,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=config.study,
                storage_path=str(config.study_dir / "ray"),
                verbose=0,
                callbacks=[_progress_callback(config.trials, on_event)],
            ),
        )
        tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()
    study = optuna.load_study(study_name=config.study, storage=storage)
    records = trial_records(study)
    return SearchOutcome(
        study=config.study,
        storage=config.storage,
        study_dir=str(config.study_dir),
        records=records,
        pareto=pareto_records(records),
        seconds=time.perf_counter() - started,
    )
