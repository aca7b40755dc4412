"""Running a search: Optuna samples, Ray Tune runs the trials, the study records everything."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from ray.tune.stopper import Stopper

from nas._config import AUTO, SearchConfig, check_input_shape
from nas._confirm import confirm_seeds, enqueue_confirm, plan_confirm
from nas._constraints import Screen
from nas._errors import ConfigError
from nas._fit import file_digest, nothing_matches, plan_initial_weights, read_state_dict, resolve_name_map
from nas._moasha import MultiObjectiveASHA
from nas._resume import Heartbeat, reconcile_orphans, requeue_failed_starting_points
from nas._searcher import MAX_SKIPPED_IN_A_ROW, DefineByRun, StudySearch
from nas._trainable import run_trial
from search_spaces import (
    SampleContext,
    SearchSpace,
    baseline_params,
    block_info,
    build_model,
    enumerate_specs,
    replay_spec,
)
from studies import (
    ATTR_HV_REFERENCE,
    ATTR_STAGE,
    CONFIRM_STAGE,
    StudyExistsError,
    TrialRecord,
    create_study,
    load_study,
    open_storage,
    pareto_records,
    redact,
    spent_trials,
    state_counts,
    study_names,
    trial_records,
)
from studies import parse_storage_url as _parse_url
from trainers import count_flops, data_config_from_dict, load_data

logger = logging.getLogger(__name__)

#: ``on_event(message)``: progress lines for whoever owns the terminal.
OnEvent = Callable[[str], None]
#: ``on_progress(records, running)``: the study's records after a trial ends, and how many run now.
OnProgress = Callable[[list[TrialRecord], int], None]


@dataclass(frozen=True)
class SearchOutcome:
    """Where a finished search put its results, and what they are."""

    study: str
    storage: str
    study_dir: str
    records: list[TrialRecord]
    pareto: list[TrialRecord]
    seconds: float
    #: Why the search ran fewer trials than its budget, in words (None: it did not).
    stopped_early: str | None = None
    #: True when SIGINT (Ctrl-C) stopped the search.
    interrupted: bool = False


class _PicklableNSGAII(optuna.samplers.NSGAIISampler):
    """NSGA-II that pickles. Since Optuna 5.1 the genetic samplers hold a ``threading.Lock``
    (``optuna/samplers/_ga/_base.py``) without dropping it when pickled, and Ray's ``Tuner`` pickles
    the searcher, with its sampler, into ``tuner.pkl``: every NSGA-II search failed with "cannot
    pickle '_thread.lock' object". The lock is recreated on unpickling, as Optuna's own
    ``JournalStorage`` does with its lock."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


# The generation keys a GA sampler writes into the study are named after its class
# (``__init_subclass__``): keep NSGA-II's, so that studies resume across the two classes.
_PicklableNSGAII._GENERATION_KEY = optuna.samplers.NSGAIISampler._GENERATION_KEY
_PicklableNSGAII._PARENT_CACHE_KEY_PREFIX = optuna.samplers.NSGAIISampler._PARENT_CACHE_KEY_PREFIX


def make_sampler(config: SearchConfig) -> optuna.samplers.BaseSampler:
    """The study's sampler. NSGA-II (default) and TPE read the trials' constraint (set by the
    searcher when the config bounds the cost): a refused spec's violation steers them away from its
    neighbourhood. ``grid`` enqueues every architecture up front; the random sampler only fills in
    if the budget is larger than the grid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if config.sampler == "nsga2":
            # At most 10: on the tabular benchmark (bench/search_efficiency.py, 224 architectures, 224
            # trials) a population of 20 needed 1.4x the trials of 10 to reach 95% of the true front.
            population = config.population or max(4, min(10, config.trials // 4))
            return _PicklableNSGAII(population_size=population, seed=config.seed)
        if config.sampler == "tpe":
            # TPE's random start-up phase covers the space before it models it.
            startup = max(4, min(10, config.trials // 2))
            return optuna.samplers.TPESampler(
                seed=config.seed,
                n_startup_trials=startup,
                multivariate=True,
                group=True,
            )
        return optuna.samplers.RandomSampler(seed=config.seed)


#: Objectives every intermediate result carries (counted before training), which rungs can rank on.
KNOWN_BEFORE_TRAINING = ("gflops", "params")


def make_scheduler(config: SearchConfig) -> Any:
    """Early stopping from ``grace_period`` on: rungs promote by non-dominated sorting of validation
    Dice and the study's counted cost objectives (``promotion: pareto``, MOASHA), or by Dice alone
    (``promotion: dice``, Ray's ASHA)."""
    assert config.grace_period is not None
    if config.promotion == "dice":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="epoch",
            metric="val_dice",
            mode="max",
            max_t=config.train.epochs,
            grace_period=config.grace_period,
            reduction_factor=config.reduction_factor,
            stop_last_trials=False,
        )
    costs = [name for name in config.objectives if name in KNOWN_BEFORE_TRAINING]
    return MultiObjectiveASHA(
        time_attr="epoch",
        metrics=["val_dice", *costs],
        modes=["max", *("min" for _ in costs)],
        max_t=config.train.epochs,
        grace_period=config.grace_period,
        reduction_factor=config.reduction_factor,
    )


def starting_points(config: SearchConfig, context: SampleContext) -> list[dict[str, Any]]:
    """The parameters enqueued when a study is created, in order.

    ``grid``: every distinct architecture of the space × the training seeds. Otherwise, with
    ``baselines``, the known reference points: no attention, pwa alone, sa alone and each preset the
    space holds (joint, cbam, da_block), at most half the trial budget.
    """
    seeds = [{"train.seed": s} for s in range(config.replicates)] if config.replicates > 1 else [{}]
    if config.sampler == "grid":
        return [{**params, **seed} for params, _ in enumerate_specs(config.space, context) for seed in seeds]
    if not config.baselines:
        return []
    presets = [b for b in config.space.blocks if block_info(b).expand is not None]
    points = []
    for block in ("none", "pwa", "sa", *presets):
        params = baseline_params(config.space, block, context)
        if params is not None and params not in points:
            points.append(params)
    return [{**p, **seeds[0]} for p in points[: max(1, config.trials // 2)]]


#: Train fields added since the first studies, with the value a study recorded before them trained
#: with, so that such a study can be resumed: no warm-up, no test-time augmentation.
TRAIN_FIELDS_ADDED: dict[str, Any] = {"warmup_fraction": 0.0, "tta": "none"}


def _comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """The study attributes a resumed search must share with the study it continues."""
    train = {**TRAIN_FIELDS_ADDED, **dict(attrs.get("train") or {})}
    for varies in ("threads_per_trial", "device", "amp"):
        train.pop(varies, None)
    # What the rest of the recipe makes irrelevant: the step period without the step schedule
    # (``step_every`` counted optimiser steps until 2026-12), λ without the bce_l2 loss.
    for unused, needs in (("step_every", ("schedule", "step")), ("step_fraction", ("schedule", "step"))):
        if train.get(needs[0]) != needs[1]:
            train.pop(unused, None)
    if train.get("loss") != "bce_l2":
        train.pop("l2_weight", None)
    picked = {key: attrs.get(key) for key in ("data", "space", "input_shape", "replicates", "objectives", "init")}
    if isinstance(picked["data"], dict):  # through the data config: fields added since take their defaults
        picked["data"] = data_config_from_dict(picked["data"]).to_dict()
    if isinstance(picked["space"], dict):  # through SearchSpace: fields added since take their defaults
        picked["space"] = SearchSpace.from_dict(picked["space"]).to_dict()
    return json.loads(json.dumps({**picked, "train": train if "train" in attrs else None}))


#: Which differing field a refused resume names: what the user changed before what follows from it
#: (the kind of data before its channels, 2D/3D before the input shape), then alphabetically.
CONFLICT_PRIORITY = (
    "kind",
    "spatial_dims",
    "path",
    "task",
    "blocks",
    "backbones",
    "loss",
    "optimizer",
    "schedule",
    "size",
    "patch",
)


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def resume_conflict(before: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The most telling difference between a study's recorded attributes and a new search's, as
    ``data.kind ('synthetic' → 'drive')`` (recorded → now); None if they agree. Top-level keys in ``now``'s order
    (data, space, input shape, ...), fields within one by ``CONFLICT_PRIORITY``, then alphabetically."""
    for key in now:
        old, new = before.get(key), now[key]
        if old == new:
            continue
        if isinstance(new, dict) and isinstance(old, dict):
            fields = [k for k in set(new) | set(old) if old.get(k) != new.get(k)]
            if fields:
                rank = {name: i for i, name in enumerate(CONFLICT_PRIORITY)}
                name = min(fields, key=lambda k: (rank.get(k, len(rank)), k))
                return f"{key}.{name} ({_shown(old.get(name))} → {_shown(new.get(name))})"
        return f"{key} ({_shown(old)} → {_shown(new)})"
    return None


def _open_or_resume(
    storage: optuna.storages.BaseStorage, config: SearchConfig, attrs: dict[str, Any], on_event: OnEvent | None
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists and was made by the same data, space and training."""
    if config.study not in study_names(storage):
        try:
            return create_study(storage, config.study, attrs=attrs, objectives=config.objectives), False
        except (StudyExistsError, optuna.exceptions.DuplicatedStudyError):
            pass  # another driver created it a moment ago: join it
    study = load_study(storage, config.study)
    now = _comparable(attrs)
    before = _comparable(dict(study.user_attrs))
    for _ in range(60):  # a driver that has just created the study may still be writing its attributes
        if all(before.get(key) is not None or now[key] is None for key in now):
            break
        time.sleep(0.5)
        before = _comparable(dict(load_study(storage, config.study).user_attrs))
    conflict = resume_conflict(before, now)
    if conflict is not None:
        raise ConfigError(
            f"study {config.study!r} exists and was searched with a different {conflict}; run the same "
            "configuration to resume it, or choose another study name (--study / name:)"
        )
    reconciled = reconcile_orphans(study)
    if on_event:
        counts = ", ".join(f"{n} {s}" for s, n in state_counts(trial_records(study)).items()) or "no trials"
        line = f"resuming study {config.study} ({counts})"
        if reconciled.orphans:
            line += f"; trials {list(reconciled.orphans)} were orphaned by a stopped driver and are retried first"
        on_event(line)
    return study, True


def _progress_callback(
    total: int, study: optuna.Study, on_event: OnEvent | None, on_progress: OnProgress | None
) -> Any:
    from ray.tune import Callback

    class _Progress(Callback):
        def __init__(self) -> None:
            self.done = 0

        def _after(self, trials: list[Any], line: str) -> None:
            self.done += 1
            if on_event:
                on_event(f"[{self.done}/{total}] {line}")
            if on_progress:
                running = sum(1 for t in trials if t.status == "RUNNING")
                on_progress(trial_records(study), running)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            number = trial.config.get("trial_number", "?")
            if result.get("failed"):
                status = "FAILED: " + str(result.get("error", "")).splitlines()[0]
            elif result.get("complete"):
                status = f"dice={result['dice']:.4f}  gflops={result['gflops']:.4f}"
            else:
                status = f"stopped early after epoch {result.get('epoch', 0)} (PRUNED)"
            self._after(trials, f"trial {number}: {status}")

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._after(
                trials, f"trial {trial.config.get('trial_number', '?')}: ERROR, recorded FAIL (see the Ray logs)"
            )

    return _Progress()


def _pinned(fixed: dict[str, Any], name: str, choices: list[Any]) -> Any:
    """The pinned choice where there is one and the space has it, else the first."""
    value = fixed.get(name)
    return value if value in choices else choices[0]


def check_init(config: SearchConfig, context: SampleContext) -> dict[str, Any]:
    """What ``config.init`` gives each backbone and base width of the space (at its deepest level
    count, without attention), for the study's attributes; refused if it gives every one nothing."""
    assert config.init is not None
    state = read_state_dict(config.init.path, option="train.init")
    name_map = resolve_name_map(config.init.name_map, state.keys(), option="train.init_map")
    space, matched = config.space, {}
    own: dict[str, torch.Tensor] = {}
    for backbone in space.backbones:
        for width in space.base_widths:
            pinned = {"backbone": backbone, "backbone.depth": max(space.depths), "backbone.base_width": width}
            fixed = {**pinned, "attention.block": "none", "extra.block": "none"}
            _, spec = replay_spec(space, context, functools.partial(_pinned, fixed))
            try:
                with torch.device("meta"):  # names and shapes only
                    own = build_model(spec).state_dict()
            except Exception:  # a block whose construction computes on its tensors
                own = build_model(spec).state_dict()
            report, _ = plan_initial_weights(own, state, source=config.init.path, name_map=name_map)
            matched[f"{backbone}/{width}"] = len(report.loaded)
    if not any(matched.values()):
        raise ConfigError(
            nothing_matches("train.init", config.init.path, state, own, "", target="any backbone of the space")
        )
    return {
        **config.init.to_dict(),
        "resolved_map": name_map.name if name_map is not None else None,
        "sha256": file_digest(config.init.path),
        "loaded_tensors": matched,
    }


#: How long ``--address`` gets to answer a TCP connect before the search is refused.
CONNECT_TIMEOUT_S = 5.0


def _address_error(address: str, why: str) -> ConfigError:
    return ConfigError(
        f"address (--address): {address!r}: {why}; give the HOST:PORT of a running Ray head "
        "(ray start --head prints it), or leave --address out to start a local runtime"
    )


def _check_address(address: str) -> None:
    """Refuse, within seconds, a Ray address nothing answers at (Ray itself retries for minutes)."""
    from ray._private.services import canonicalize_bootstrap_address

    target = address.split("://", 1)[1] if "://" in address else address
    if target == "auto":
        try:
            found = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise _address_error(address, f"no running Ray cluster was found on this machine ({exc})") from None
        if found is None:
            raise _address_error(address, "no running Ray cluster was found on this machine")
        target = found
    host, sep, port_text = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _address_error(address, "not of the form HOST:PORT (or auto)")
    try:
        socket.create_connection((host, int(port_text)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise _address_error(
            address, f"cannot connect to {host}:{port_text} ({reason} within {CONNECT_TIMEOUT_S:g} s)"
        ) from None


#: Seconds Ray may retry an address that answers TCP but is not a Ray head (its default is ~20).
GCS_WAIT_S = 8


@contextlib.contextmanager
def _bounded_gcs_wait() -> Iterator[None]:
    key = "RAY_gcs_server_port_wait_time_s"
    if key in os.environ:  # the user's own budget wins
        yield
        return
    os.environ[key] = str(GCS_WAIT_S)
    try:
        yield
    finally:
        os.environ.pop(key, None)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's C++ core writes its retry warnings straight to file descriptor 2: keep them off the
    user's terminal while attaching (a refusal is one line of ours)."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


#: The module a local runtime's workers import as they start (``nas._worker``), and the most
#: workers that may do so per trial slot: Ray starts one worker per CPU with the runtime, and each
#: that imports torch and MONAI holds ~0.5 GB, so on a machine with many more CPUs than trials the
#: imports are left to the trials' own workers.
WORKER_PRELOAD = "nas._worker"
PRELOAD_WORKERS_PER_TRIAL = 2


def _preload_config(config: SearchConfig) -> dict[str, Any]:
    """Ray's ``_system_config`` for a local runtime: its workers import the trial's modules as they
    start (while the driver opens the study), when few enough workers start with it and the trials'
    actors can use them (see ``_plain_trial_actors``)."""
    if "RAY_preload_python_modules" in os.environ:  # the user's own choice (Ray reads it)
        return {}
    cpus = os.cpu_count() or 1  # what Ray gives a local runtime, and the workers it starts with it
    if cpus > max(4, PRELOAD_WORKERS_PER_TRIAL * config.slots({"CPU": cpus})):
        return {}
    from ray.tune.execution import class_cache

    if any(name in os.environ for name in class_cache.ENV_VARS_TO_PROPAGATE):
        return {}  # Tune gives its actors these variables: they start workers of their own
    # Ray's idle-worker killer takes a worker that is still importing for idle and stops it (then
    # starts another for the first trial); the runtime lives only as long as the search.
    return {"preload_python_modules": [WORKER_PRELOAD], "kill_idle_workers_interval_ms": 0}


@contextlib.contextmanager
def _plain_trial_actors() -> Iterator[None]:
    """While Tune runs: its trial actors get no runtime environment of their own, so Ray can place
    them in the workers it started (and preloaded) with the runtime rather than start new ones.

    Tune gives every trial actor ``PL_DISABLE_FORK=1`` (for PyTorch Lightning, which no trial
    here uses); any runtime environment, however small, keeps an actor off the pooled workers.
    """
    try:
        from ray.tune.execution import class_cache
    except ImportError:  # a Ray without that module: its own defaults
        yield
        return
    saved = getattr(class_cache, "DEFAULT_ENV_VARS", None)
    if not isinstance(saved, dict):
        yield
        return
    class_cache.DEFAULT_ENV_VARS = {}
    try:
        yield
    finally:
        class_cache.DEFAULT_ENV_VARS = saved


def _init_ray(config: SearchConfig, *, preload: bool = False) -> bool:
    """Attach to ``config.address`` or start an embedded local runtime; True if we started it.
    ``preload``: the local runtime's workers import the trial function's modules as they start."""
    import ray

    if ray.is_initialized():
        return False
    # Ray's own start-up chatter is not the user's business; trial errors reach them through the study.
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if config.address:
        _check_address(config.address)
        try:
            with _quiet_stderr(), _bounded_gcs_wait():
                ray.init(address=config.address, **common)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _address_error(config.address, f"Ray could not attach to it ({first})") from None
    else:
        start_local_ray(config, preload=preload)
    return True


def start_local_ray(config: SearchConfig, *, preload: bool = True) -> None:
    """Start the embedded local Ray runtime ``run_search`` starts when it has no ``address``
    (benchmarks start it beforehand to time a search without Ray's own start-up)."""
    import ray

    ray.init(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        _system_config=_preload_config(config) if preload else None,
    )


def _check_out_dir(config: SearchConfig) -> None:
    """Refuse an ``out_dir`` the study's folder cannot be made in, before anything is written."""
    target = config.study_dir
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(
            f"out_dir (--out-dir): cannot make {target}: {probe} is a file, not a directory; choose another --out-dir"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"out_dir (--out-dir): cannot make {target}: {probe} is not writable by this user; choose another --out-dir"
        )


def _make_study_dir(config: SearchConfig) -> None:
    try:
        config.study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"out_dir (--out-dir): cannot make {config.study_dir}: {exc.strerror or exc}; choose another --out-dir"
        ) from None


#: The hypervolume's GFLOPs bound when no ``max_gflops`` is set: this much above the estimate of
#: the space's most expensive candidate (FLOPs are counted, not measured: the margin is for the
#: options the estimate does not try).
HV_MARGIN = 1.1


def hv_reference(config: SearchConfig, context: SampleContext, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The hypervolume reference point, fixed when the study is created: Dice 0 and the GFLOPs bound
    (``constraints.max_gflops``, or ``HV_MARGIN`` × the most expensive of the space's largest
    candidates: every backbone × attention block at its deepest, widest, everywhere-placed setting).
    Fixed, the hypervolume can only grow as trials are added."""
    if config.constraints.max_gflops is not None:
        return {"dice": 0.0, "gflops": float(config.constraints.max_gflops), "source": "constraints.max_gflops"}
    worst = 0.0
    for backbone in config.space.backbones:
        for block in config.space.usable_blocks():

            def pick(name: str, choices: list[Any], backbone: str = backbone, block: str = block) -> Any:
                if name == "backbone":
                    return backbone if backbone in choices else choices[-1]
                if name == "attention.block":
                    return block
                return choices[-1]  # deepest, widest, every site and level (subsets are listed smallest first)

            try:
                _, spec = replay_spec(config.space, context, pick)
                worst = max(worst, count_flops(build_model(spec), input_shape) / 1e9)
            except Exception as exc:  # a combination the space cannot build is not a candidate
                logger.info("hypervolume reference: skipped %s/%s (%s)", backbone, block, exc)
    return {
        "dice": 0.0,
        "gflops": HV_MARGIN * worst if worst > 0 else 1.0,
        "source": f"{HV_MARGIN:g} x the estimated GFLOPs of the space's most expensive candidate",
    }


def _plan_confirm_stage(
    config: SearchConfig, study: optuna.Study, context: SampleContext, on_event: OnEvent | None
) -> int:
    """Enqueue what the confirm stage still has to train; how many confirm trials are waiting."""
    search_seeds = list(range(config.replicates)) if config.replicates > 1 else [config.train.seed]
    seeds = confirm_seeds(search_seeds, config.confirm_seeds)
    points = plan_confirm(
        study,
        trial_records(study),
        space=config.space,
        context=context,
        objectives=config.objectives,
        members=config.confirm_members,
        seeds=seeds,
    )
    enqueue_confirm(study, points)
    waiting = sum(
        1
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if t.user_attrs.get(ATTR_STAGE) == CONFIRM_STAGE
    )
    if on_event and waiting:
        members = sorted({p.label for p in points if p.role == "member"})
        twins = sorted({p.label for p in points if p.role == "twin"})
        on_event(
            f"confirm stage: {waiting} trials (seeds {', '.join(map(str, seeds))}, {config.train.epochs} epochs) of "
            f"{len(members)} front members" + (f" and {len(twins)} no-attention twins" if twins else "")
        )
    return waiting


def _check_resources(config: SearchConfig) -> None:
    """Refuse per-trial resources the Ray cluster does not have: Tune would wait for them for ever."""
    import ray

    have = ray.cluster_resources()
    for name, key, wanted in (("cpus", "CPU", config.cpus_per_trial), ("gpus", "GPU", config.gpus_per_trial)):
        total = float(have.get(key, 0.0))
        if wanted > 0 and wanted > total:
            raise ConfigError(
                f"resources.{name}: {wanted:g} per trial, but the Ray cluster has {total:g} {key}s in all; "
                f"lower it (fractions share a device) or attach to a cluster that has them (--address)"
            )


class _InterruptStopper(Stopper):
    """A Tune stopper that ends the experiment once SIGINT has been received (see ``_catching_sigint``)."""

    def __init__(self, event: threading.Event) -> None:
        self._event: threading.Event | None = event

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its stopper with the experiment's state
        return {"_event": None}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self._event is not None and self._event.is_set()


#: Tune's variable that stops it adding its CSV, JSON and TensorBoard loggers to every experiment.
NO_DEFAULT_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


def _result_loggers() -> list[Any]:
    """What Tune writes of each trial's results: its ``result.json`` (one line per result), which
    ``ray.tune.ExperimentAnalysis`` reads; the study is the record of the search. Tune's
    ``progress.csv`` and TensorBoard event files were written on the driver between trials and read
    by nothing (the dashboard draws the learning curves). A user who sets Tune's own variable
    ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS`` gets what Tune does with it (``1``: no logger at all)."""
    if NO_DEFAULT_LOGGERS in os.environ:
        return []
    from ray.tune.logger import JsonLoggerCallback

    return [JsonLoggerCallback()]


@contextlib.contextmanager
def _no_default_loggers() -> Iterator[None]:
    """While ``Tuner.fit`` builds its callbacks: no CSV or TensorBoard logger (``_result_loggers``)."""
    if NO_DEFAULT_LOGGERS in os.environ:  # the user's own choice
        yield
        return
    os.environ[NO_DEFAULT_LOGGERS] = "1"
    try:
        yield
    finally:
        os.environ.pop(NO_DEFAULT_LOGGERS, None)


@contextlib.contextmanager
def _catching_sigint(event: threading.Event, searcher: StudySearch) -> Iterator[None]:
    """While Tune runs: the first SIGINT stops the search cleanly (``event``); a second one raises
    ``KeyboardInterrupt`` at once (the next search reconciles what it leaves RUNNING)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours, not Tune's: Tune would call it a normal end

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        searcher.interrupted = True
        logger.warning("interrupted: stopping the search (Ctrl-C again to stop at once)")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = before


def run_search(
    config: SearchConfig,
    on_event: OnEvent | None = None,
    on_progress: OnProgress | None = None,
    *,
    trainable: Callable[..., None] | None = None,
    on_opened: Callable[[bool], None] | None = None,
) -> SearchOutcome:
    """Run the search ``config`` describes and record it in its study; returns where everything went.

    If the study exists (same data, space and training), the search resumes it: trials orphaned by a
    stopped driver are marked FAIL and retried, and the trial budget counts what the study already
    spent. ``on_event`` gets progress lines, ``on_progress`` the study's records after every trial.
    ``trainable`` replaces ``run_trial`` (same keyword arguments); benchmarks use it to time the
    orchestration on trivial trials. ``on_opened(resumed)`` is called once the study exists, after
    every check that can refuse the search (nothing is written before that).

    SIGINT (Ctrl-C) stops the search as the wall-time budget would, but the trials it cuts off are
    recorded FAIL ``interrupted`` (not charged to ``budget.trials``) and enqueued again, and the
    outcome says ``interrupted``.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    started = time.perf_counter()
    data = load_data(config.data)  # every check of the files runs here, before anything is written
    check_input_shape(config.space, config.data, data.input_shape)
    attrs = config.study_attrs(data.input_shape)
    if data.split is not None:  # every trial of the study sees the same cases
        attrs["split"] = {part: list(ids) for part, ids in data.split.items()}
    if data.split_groups is not None:  # patients or sequences, none in two parts
        attrs["split_groups"] = {part: list(groups) for part, groups in data.split_groups.items()}
    context = SampleContext(spatial_dims=data.spatial_dims, in_channels=data.in_channels, out_channels=data.num_classes)
    if config.init is not None:  # before the study exists: weights that fit nothing record nothing
        attrs["init"] = check_init(config, context)
        if on_event:
            loaded = ", ".join(f"{key} {n}" for key, n in attrs["init"]["loaded_tensors"].items())
            on_event(f"every trial starts from {config.init.path} (tensors loaded per backbone/width: {loaded})")
    budget = config.trials
    points = starting_points(config, context)
    interrupt = threading.Event()
    interrupted: list[int] = []
    if config.sampler == "grid":
        budget = min(budget, len(points))
    _check_out_dir(config)  # before Ray and the study: a folder that cannot be made records nothing
    # An unreachable --address is refused here, within seconds. Workers of a runtime started here
    # import the trial function's modules while the study opens (not a replacement trainable's).
    started_ray = _init_ray(config, preload=trainable is None)
    try:
        _check_resources(config)  # before the study exists: a search that cannot run records nothing
        # Trials at once (``auto``: as many as the cluster holds, counted now).
        slots = config.slots(ray.cluster_resources())
        if config.concurrency == AUTO:
            config = dataclasses.replace(config, concurrency=slots)
        # Counting the reference's FLOPs imports torch._dynamo (~2 s): after Ray started, so that
        # its workers import the trial's modules meanwhile (on a machine with cores to spare).
        attrs[ATTR_HV_REFERENCE] = hv_reference(config, context, data.input_shape)
        storage = open_storage(config.storage, create=True)
        study, resumed = _open_or_resume(storage, config, attrs, on_event)
        try:
            _make_study_dir(config)
        except ConfigError:
            if not resumed:  # the study this run just created holds nothing yet: take it back
                with contextlib.suppress(Exception):
                    optuna.delete_study(study_name=config.study, storage=storage)
            raise
        retried: list[int] = []
        if not resumed:
            for params in points:
                study.enqueue_trial(params)
        else:
            retried = requeue_failed_starting_points(study, points)
            if retried and on_event:
                on_event(f"reference trials {retried} had failed; their architectures are enqueued again")
        if on_opened:
            on_opened(resumed)
        shown = redact(_parse_url(config.storage))
        left = max(0, budget - spent_trials(trial_records(study)))
        if on_event:
            on_event(
                f"study {config.study} in {shown}; {config.sampler} sampler, {left} of {budget} trials to run, "
                f"{slots} at a time" + (f", {len(points)} enqueued first" if points and not resumed else "")
            )

        def stage_searcher(**stage: Any) -> StudySearch:
            """The searcher of one stage: ``trial_budget`` for the search, ``only_enqueued`` to confirm."""
            return StudySearch(
                define_by_run=DefineByRun(config.space, context, replicates=config.replicates),
                storage=storage,
                study_name=config.study,
                sampler=make_sampler(config),
                epochs=config.train.epochs,
                keep_top=config.keep_top,
                screen=Screen(config.constraints, data.input_shape),
                seed=config.train.seed,
                objectives=config.objectives,
                **stage,
            )

        searcher = stage_searcher(trial_budget=budget)
        scheduler = None
        if config.grace_period is not None:
            # Decisions at rungs before the last epoch only: a trial that reaches the end always sends
            # its complete result (stop_last_trials would cut it off at max_t, leaving it unfinished).
            scheduler = make_scheduler(config)
        wrapped = tune.with_parameters(
            trainable or run_trial,
            data=data,
            train_config=config.train,
            artifact_dir=str(config.study_dir),
            threads=config.threads_per_trial,
            # Only when set: a replacement trainable (benchmarks) need not know the keyword.
            **({"init": config.init} if config.init is not None else {}),
        )
        resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}

        def fit(stage_searcher: StudySearch, stage_scheduler: Any, samples: int, name: str) -> list[int]:
            """Run ``samples`` trials of one stage; the numbers of the trials an interruption cut off."""
            budget_s = None
            if config.wall_time_s is not None:
                budget_s = max(1.0, config.wall_time_s - (time.perf_counter() - started))
            tuner = tune.Tuner(
                tune.with_resources(wrapped, resources),
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(stage_searcher, max_concurrent=slots),
                    scheduler=stage_scheduler,
                    num_samples=max(1, samples),
                    time_budget_s=budget_s,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=str(config.study_dir / "ray"),
                    verbose=0,
                    callbacks=[_progress_callback(samples, study, on_event, on_progress), *_result_loggers()],
                    stop=_InterruptStopper(interrupt),
                ),
            )
            with (
                Heartbeat(study),
                _catching_sigint(interrupt, stage_searcher),
                _plain_trial_actors(),
                _no_default_loggers(),
            ):
                tuner.fit()
            if interrupt.is_set():
                return stage_searcher.close_unfinished(interrupted=True)
            stage_searcher.close_unfinished()
            return []

        if left:
            interrupted = fit(searcher, scheduler, left, config.study)
        search_done = spent_trials(trial_records(study)) >= budget or searcher.exhausted
        confirming = config.confirm_members > 0 and budget >= config.confirm_min_trials
        if confirming and search_done and not interrupt.is_set():
            confirm = stage_searcher(only_enqueued=True)
            todo = _plan_confirm_stage(config, study, context, on_event)
            if todo:
                interrupted += fit(confirm, None, todo, f"{config.study}-confirm")
    finally:
        if started_ray:
            ray.shutdown()
    records = trial_records(optuna.load_study(study_name=config.study, storage=storage))
    spent = spent_trials(records)
    stopped_early = None
    if interrupt.is_set():
        stopped_early = f"interrupted (Ctrl-C) after {spent} of {budget} trials" + (
            f"; trials {interrupted} were cut off: recorded FAIL (interrupted), not charged to the budget, "
            "and run first when the search resumes"
            if interrupted
            else ""
        )
    elif searcher.exhausted:
        stopped_early = (
            f"stopped after {spent} of {budget} trials: the last {MAX_SKIPPED_IN_A_ROW} sampled architectures were "
            "infeasible or already evaluated (widen the space or relax the constraints)"
        )
    elif spent < budget and config.wall_time_s is not None:
        stopped_early = f"stopped after {spent} of {budget} trials: the wall-time budget of {config.wall_time_s:.0f} s"
    return SearchOutcome(
        study=config.study,
        storage=config.storage,
        study_dir=str(config.study_dir),
        records=records,
        pareto=pareto_records(records),
        seconds=time.perf_counter() - started,
        stopped_early=stopped_early,
        interrupted=interrupt.is_set(),
    )
