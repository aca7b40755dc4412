"""Orchestration benchmarks: what our search loop costs on top of Ray Tune and Optuna.

- **Our search path against bare Ray Tune + stock ``OptunaSearch``**, on the same N trivial trials
  in the same run: ``nas.run_search`` (our ``StudySearch`` with its screening, duplicate reuse,
  trial budget, heartbeats, records and weight pruning) against a bare ``tune.Tuner`` with Ray's
  ``OptunaSearch`` in an Optuna RDB storage in SQLite, the same define-by-run space
  (``nas.DefineByRun``), sampler class and seed, objectives, ``ConcurrencyLimiter``, resources
  (1 CPU per trial) and the same trivial trial function (no training: E per-epoch reports of
  deterministic fake metrics computed from the spec, then the complete result). Ray is started
  once, before both, so its start-up is outside every timing; the order alternates over rounds.
  Default: 40 trials, 2 at a time, 3 epochs, 3 rounds, with NSGA-II (the default sampler) and TPE.
  When ours misses the goal (≤ 1.05× the reference), one more run of each path is profiled
  (cProfile, driver) and the notes say where our extra time goes.
- **The fraction of a demo search's wall time spent outside training**: small real searches with
  the real trainable on the built-in synthetic data, against the trainers' own loop time.

Part of ``bench/run.py`` (``BENCHMARKS.md``); alone it prints its section (``--output F`` writes it too).
``--quick`` is a smoke run (8 trivial trials, one round,
NSGA-II only; a 3-trial, 1-epoch demo search).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import json
import logging
import os
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # as run_search sets it: no progress tables

import _machine
import _report
import optuna
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import nas  # noqa: E402
from search_spaces import SampleContext  # noqa: E402
from studies import ATTR_PHASES, ATTR_REUSED_FROM, ATTR_SPEC_HASH, OBJECTIVES  # noqa: E402
from trainers import SegmentationData, SyntheticConfig, TrainConfig, load_data  # noqa: E402

GOAL_RATIO = 1.05  # ours / reference on trivial trials (issue 15)
PACKAGES = ("nas", "studies", "search_spaces", "trainers")


def trivial_trial(
    config: dict[str, Any],
    *,
    data: SegmentationData,
    train_config: TrainConfig,
    artifact_dir: str,
    threads: int,
) -> None:
    """A trial that trains nothing: ``train_config.epochs`` reports of fake metrics, then the complete
    result with every key ``nas.run_trial`` reports. The figures depend on the spec only."""
    digest = hashlib.sha256(json.dumps(config["spec"], sort_keys=True).encode()).digest()
    dice = 0.5 + int.from_bytes(digest[:4], "big") / 2**33
    flops = 10**7 + int.from_bytes(digest[4:8], "big") % 10**9
    base = {
        "gflops": flops / 1e9,
        "flops": flops,
        "params": 10**4 + int.from_bytes(digest[8:12], "big") % 10**6,
        "peak_memory_mb": 1.0,
        "complete": False,
    }
    epochs = train_config.epochs
    curve = [dice * e / epochs for e in range(1, epochs + 1)]
    losses = [1.0 - d for d in curve]
    for epoch in range(1, epochs + 1):
        metrics = {"loss": losses[epoch - 1], "val_dice": curve[epoch - 1], "best_dice": curve[epoch - 1]}
        tune.report({**base, "epoch": epoch, "dice": metrics["best_dice"], **metrics})
    tune.report(
        {
            **base,
            "complete": True,
            "epoch": epochs,
            "dice": dice,
            "val_dice": dice,
            "best_epoch": epochs,
            "weights_path": None,
            "val_dice_history": curve,
            "loss_history": losses,
            "train_seconds": 0.0,
            "latency_ms": 0.0,
            "measured_memory_mb": 0.0,
            "val_metrics_json": json.dumps(None),
            "test_metrics_json": json.dumps(None),
        }
    )


@dataclass(frozen=True)
class Setup:
    trials: int
    concurrency: int
    epochs: int
    sampler: str
    data: SyntheticConfig = field(default_factory=lambda: SyntheticConfig(n_train=4, n_val=2, size=32))

    def config(self, root: Path, study: str) -> nas.SearchConfig:
        return nas.SearchConfig(
            study=study,
            storage=f"sqlite:///{root / f'{study}.db'}",
            trials=self.trials,
            concurrency=self.concurrency,
            train=TrainConfig(epochs=self.epochs),
            data=self.data,
            out_dir=root / "runs",
            baselines=False,
            sampler=self.sampler,
            confirm_members=0,  # the search stage's orchestration is what is timed
        )


@dataclass
class Run:
    seconds: float
    trained: int  # Ray trials run (COMPLETE, reused duplicates and refused specs not counted)
    distinct: int  # distinct architectures among them
    told: int  # trials in the study (ours: plus reused duplicates and refused specs)


def run_ours(setup: Setup, root: Path, study: str) -> Run:
    started = time.perf_counter()
    outcome = nas.run_search(setup.config(root, study), trainable=trivial_trial)
    seconds = time.perf_counter() - started
    trained = [r for r in outcome.records if r.state == "COMPLETE"]
    return Run(seconds, len(trained), len({r.spec_hash for r in trained}), len(outcome.records))


def run_reference(setup: Setup, root: Path, study: str) -> Run:
    """The same trials through bare Ray Tune and Ray's stock ``OptunaSearch``."""
    config = setup.config(root, study)  # for its sampler and paths only
    started = time.perf_counter()
    storage = optuna.storages.RDBStorage(config.storage)
    data = load_data(config.data)
    context = SampleContext(spatial_dims=data.spatial_dims, in_channels=data.in_channels, out_channels=data.num_classes)
    searcher = OptunaSearch(
        space=nas.DefineByRun(config.space, context),
        metric=list(OBJECTIVES),
        mode=["max", "min"],
        sampler=nas.make_sampler(config),
        study_name=study,
        storage=storage,
    )
    wrapped = tune.with_parameters(
        trivial_trial,
        data=data,
        train_config=config.train,
        artifact_dir=str(config.study_dir),
        threads=config.threads_per_trial,
    )
    tuner = tune.Tuner(
        tune.with_resources(wrapped, {"cpu": config.cpus_per_trial, "gpu": 0}),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=config.slots(ray.cluster_resources())),
            num_samples=config.trials,
            reuse_actors=True,  # as run_search: the comparison is of the searcher and its records
        ),
        run_config=tune.RunConfig(name=study, storage_path=str(config.study_dir / "ray"), verbose=0),
    )
    tuner.fit()
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    seconds = time.perf_counter() - started
    trained = [t for t in trials if t.state.name == "COMPLETE"]
    return Run(seconds, len(trained), len({t.user_attrs.get(ATTR_SPEC_HASH) for t in trained}), len(trials))


RUNNERS: dict[str, Callable[[Setup, Path, str], Run]] = {"ours": run_ours, "reference": run_reference}


def compare(setup: Setup, rounds: int, root: Path) -> dict[str, list[Run]]:
    """``rounds`` runs of each, alternating which goes first (ours, ref, ref, ours, ...)."""
    runs: dict[str, list[Run]] = {"ours": [], "reference": []}
    for i in range(rounds):
        order = ("ours", "reference") if i % 2 == 0 else ("reference", "ours")
        for name in order:
            runs[name].append(RUNNERS[name](setup, root, f"{setup.sampler}-{name}-{i}"))
            print(f"{setup.sampler}, round {i + 1}/{rounds}: {name} {runs[name][-1].seconds:.1f} s", flush=True)
    return runs


def ratio(runs: dict[str, list[Run]], pick: Callable[[list[float]], float] = statistics.median) -> float:
    return pick([r.seconds for r in runs["ours"]]) / pick([r.seconds for r in runs["reference"]])


# --- profiling ---------------------------------------------------------------------------------------

#: Searcher, study and storage functions whose cumulative driver time the notes compare.
PROFILED = (
    ("nas/_searcher.py", "suggest"),
    ("nas/_searcher.py", "_skip"),
    ("nas/_searcher.py", "on_trial_result"),
    ("nas/_searcher.py", "on_trial_complete"),
    ("studies/_weights.py", "prune_weights"),
    ("studies/_records.py", "trial_records"),
    ("studies/_storage.py", "open_storage"),
    ("nas/_search.py", "_after"),
    ("optuna/optuna_search.py", "suggest"),
    ("optuna/optuna_search.py", "on_trial_complete"),
    ("optuna/optuna_search.py", "on_trial_result"),
    ("search_spaces/_space.py", "sample_spec"),
    ("study/study.py", "tell"),
    ("storages/_cached_storage.py", "set_trial_user_attr"),
    ("storages/_cached_storage.py", "get_all_trials"),
    ("studies/_storage.py", "set_trial_user_attrs"),
    ("_rdb/storage.py", "get_all_trials"),
    ("_rdb/storage.py", "set_trial_param"),
    ("tune/tuner.py", "fit"),
)


@dataclass
class Profile:
    seconds: float  # wall time of the profiled run
    rows: dict[str, tuple[int, float]]  # "dir/file:function" -> (calls, cumulative seconds)
    top: list[tuple[str, int, float]]  # the project's own functions by cumulative time


def profile(fn: Callable[[], Any]) -> Profile:
    """Run ``fn`` under cProfile (the calling thread: the driver's main thread, where Tune calls the searcher)."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(fn)
    seconds = time.perf_counter() - started
    table: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows: dict[str, tuple[int, float]] = {}
    repo = str(HERE.parent)
    top = []
    for (filename, line, function), (_cc, calls, _tt, cumulative, _callers) in table.items():
        path = Path(filename)
        key = f"{path.parent.name}/{path.name}:{function}"
        if (f"{path.parent.name}/{path.name}", function) in PROFILED:
            prev = rows.get(key, (0, 0.0))
            rows[key] = (prev[0] + calls, prev[1] + cumulative)
        if filename.startswith(repo) and "/bench/" not in filename and "/.venv/" not in filename:
            top.append((f"{path.relative_to(repo)}:{line} {function}", calls, cumulative))
    return Profile(seconds, rows, sorted(top, key=lambda r: -r[2])[:14])


# --- the demo search ---------------------------------------------------------------------------------


@dataclass
class Demo:
    name: str
    trials: int
    epochs: int
    n_train: int
    size: int
    concurrency: int
    wall_s: float
    train_s: list[float]
    in_trial_s: list[float]  # Tune's time_total_s of each trial (its function's wall time), when found
    states: dict[str, int]
    #: From the call until the study's first trial was asked for, and from its last trial's end
    #: until the call returned (the study's own timestamps).
    before_first_s: float
    after_last_s: float
    #: Each trained trial's ``phase_seconds`` (studies.ATTR_PHASES): where its slot's time went.
    phases: list[dict[str, float]] = field(default_factory=list)
    cpus: float = 0.0  # the runtime's CPUs
    goal: float = 0.0  # the most of its wall time that may be outside training (issue 15)

    @property
    def cpus_idle(self) -> float | None:
        """The share of the runtime's CPU-seconds no trial held (1 CPU per trial), when phases were recorded."""
        if not self.phases or not self.cpus:
            return None
        held = sum(sum(v for k, v in p.items() if k in PHASE_KEYS) for p in self.phases)
        return 1.0 - held / (self.wall_s * self.cpus)

    @property
    def ideal_s(self) -> float:
        return sum(self.train_s) / self.concurrency

    @property
    def outside(self) -> float:
        return 1.0 - self.ideal_s / self.wall_s

    @property
    def split(self) -> tuple[float, float] | None:
        """(inside the trial functions but outside training, outside the trial functions) as fractions
        of the wall time, when every trial's own wall time was found."""
        if not self.in_trial_s or len(self.in_trial_s) != len(self.train_s):
            return None
        c, wall = self.concurrency, self.wall_s
        return (sum(self.in_trial_s) - sum(self.train_s)) / c / wall, 1.0 - sum(self.in_trial_s) / c / wall


def trial_times(ray_dir: Path) -> list[float]:
    """Tune's ``time_total_s`` in each trial's last result (the trial function's own wall time)."""
    times = []
    for path in sorted(ray_dir.rglob("result.json")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if lines:
            times.append(float(json.loads(lines[-1]).get("time_total_s", 0.0)))
    return times


#: (name, trials, epochs, training images, image size, goal): the demo preset's data (96 training and
#: 32 validation 64×64 images) at a smaller budget, and a tiny search; the goal is the most of the
#: wall time that may be outside training, as issue 15 sets it (fixed costs weigh more in shorter
#: searches; the main job's 5% is bench/main_job.py's).
DEMOS = (
    ("demo data (96 × 64×64), 6 trials, 3 epochs", 6, 3, 96, 64, 0.10),
    ("tiny (32 × 32×32), 6 trials, 3 epochs", 6, 3, 32, 32, 0.25),
)
QUICK_DEMOS = (("tiny (16 × 32×32), 3 trials, 1 epoch", 3, 1, 16, 32, 0.25),)


def demo_search(root: Path, name: str, trials: int, epochs: int, n_train: int, size: int, goal: float) -> Demo:
    study = f"demo-{n_train}-{size}-{trials}-{epochs}"
    config = nas.SearchConfig(
        study=study,
        storage=f"sqlite:///{root / f'{study}.db'}",
        trials=trials,
        concurrency="auto",  # as many at once as the runtime's CPUs hold: 2 on this machine's 2 cores
        train=TrainConfig(epochs=epochs),
        data=SyntheticConfig(n_train=n_train, n_val=max(8, n_train // 3), size=size),
        out_dir=root / "runs",
        confirm_members=0,  # the search stage's orchestration is what is timed
    )
    # A runtime of its own, as `nas search` starts it (its workers import the trial's modules as they
    # start), but before the clock starts: Ray's own start-up is not the search's.
    fresh = not ray.is_initialized()
    if fresh:
        nas.start_local_ray(config)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        concurrency = config.slots(ray.cluster_resources())
        started, started_at = time.perf_counter(), time.time()
        outcome = nas.run_search(config)
        wall = time.perf_counter() - started
    finally:
        if fresh:
            ray.shutdown()
    print(f"demo search {name}: {wall:.1f} s", flush=True)
    told = optuna.load_study(study_name=study, storage=config.storage).get_trials(deepcopy=False)
    first = min(t.datetime_start.timestamp() for t in told if t.datetime_start is not None)
    last = max(t.datetime_complete.timestamp() for t in told if t.datetime_complete is not None)
    states: dict[str, int] = {}
    for record in outcome.records:
        states[record.state] = states.get(record.state, 0) + 1
    # REUSED duplicates carry the train_seconds of the trial they reuse: count what trained here only.
    train_s = [r.train_seconds for r in outcome.records if r.state == "COMPLETE" and r.train_seconds is not None]
    phases = [
        dict(t.user_attrs[ATTR_PHASES])
        for t in told
        if ATTR_PHASES in t.user_attrs and t.user_attrs.get(ATTR_REUSED_FROM) is None
    ]
    return Demo(
        name,
        trials,
        epochs,
        n_train,
        size,
        concurrency,
        wall,
        train_s,
        trial_times(config.study_dir / "ray"),
        states,
        first - started_at,
        started_at + wall - last,
        phases,
        cpus,
        goal,
    )


#: (key of ATTR_PHASES, what it is, whether it counts as training): the rows of the phase table.
PHASES = (
    ("start", "Ray: from the driver asking for the trial until its function runs (actor start or reuse)", False),
    ("build", "build the network (seeded)", False),
    ("cost", "count its FLOPs and parameters, estimate its memory", False),
    ("setup", "trainer set-up: loader, class frequencies, head prior, loss, optimiser", False),
    ("steps", "training steps", True),
    ("validation", "validation Dice after every epoch", True),
    ("report", "per-epoch report to Tune", True),
    ("val_metrics", "every metric of the best weights on the validation set (HD95 included)", False),
    ("test_metrics", "the same on the test set (none in these searches)", False),
    ("latency", "latency at batch 1", False),
    ("peak_memory", "peak memory of one training step, measured", False),
    ("save", "save the best weights", False),
    ("return", "Ray: from the trial's last result until the driver has it", False),
)
PHASE_KEYS = frozenset(key for key, _, _ in PHASES)


def phase_table(demos: Sequence[Demo]) -> list[str]:
    """Mean seconds per trained trial of each phase, and the slot time no trial used."""
    head = "| phase | counts as training | " + " | ".join(f"{d.name}: s per trial (share of slot time)" for d in demos)
    lines = [head + " |", "|---|---|" + "---|" * len(demos)]
    for key, what, training in PHASES:
        cells = []
        for d in demos:
            values = [p.get(key, 0.0) for p in d.phases]
            slot = d.wall_s * d.concurrency
            cells.append(f"{statistics.mean(values):.3f} ({100 * sum(values) / slot:.1f}%)" if values else "–")
        lines.append(f"| {what} (`{key}`) | {'yes' if training else 'no'} | " + " | ".join(cells) + " |")
    cells = []
    for d in demos:
        slot = d.wall_s * d.concurrency
        used = sum(sum(v for k, v in p.items() if k in PHASE_KEYS) for p in d.phases)
        cells.append(f"{(slot - used) / max(1, len(d.phases)):.3f} ({100 * (slot - used) / slot:.1f}%)")
    lines.append(
        "| no trial in the slot: the driver sampling, writing the study and reading results between trials, "
        "the search's start and end, slots idle while fewer trials than slots remain | no | " + " | ".join(cells) + " |"
    )
    return lines


# --- the report --------------------------------------------------------------------------------------


#: (label, profiled functions summed, what they do): the driver's costs ``causes`` compares.
CAUSES = (
    (
        "sampling",
        ("optuna/optuna_search.py:suggest",),
        "`OptunaSearch.suggest` (the sampler and the define-by-run space). Ours also samples past every "
        "duplicate of a finished trial, which it tells without training (REUSED); the reference trains its "
        "duplicates again",
    ),
    (
        "reading the whole study",
        ("storages/_cached_storage.py:get_all_trials",),
        "`get_all_trials`: `StudySearch.suggest` reads every trial (the study-wide budget, duplicates) on every "
        "suggestion, `prune_weights` every record after every completion, so the driver's reads grow with the "
        "square of the trials; a study with more trials (the reused duplicates) also makes the sampler's own "
        "reads dearer",
    ),
    (
        "trial attribute writes",
        ("storages/_cached_storage.py:set_trial_user_attr", "studies/_storage.py:set_trial_user_attrs"),
        "each `Trial.set_user_attr` is its own SQLite transaction (`studies.set_trial_user_attrs` writes "
        "several in one); ours records the driver, heartbeats, the result's attributes and, on a reused "
        "duplicate, its source's attributes",
    ),
    (
        "telling a result",
        ("nas/_searcher.py:on_trial_complete", "optuna/optuna_search.py:on_trial_complete"),
        "`on_trial_complete` (ours: `StudySearch`, which includes pruning weights and the records it reads)",
    ),
    (
        "per-epoch results",
        ("nas/_searcher.py:on_trial_result", "optuna/optuna_search.py:on_trial_result"),
        "`on_trial_result` (ours keeps the learning curve and writes what it records of a running trial)",
    ),
)


def causes(sampler: str, ours: Profile, ref: Profile, runs: dict[str, list[Run]]) -> list[str]:
    """Where our extra driver time went, largest first, from the profiled runs."""

    def total(profile: Profile, keys: tuple[str, ...]) -> tuple[int, float]:
        found = [profile.rows[k] for k in keys if k in profile.rows]
        return sum(c for c, _ in found), sum(t for _, t in found)

    rows = []
    for label, keys, what in CAUSES:
        (n_ours, t_ours), (n_ref, t_ref) = total(ours, keys), total(ref, keys)
        rows.append((t_ours - t_ref, label, n_ours, t_ours, n_ref, t_ref, what))
    last = runs["ours"][-1]
    lines = [
        f"**Where ours spends more ({sampler}, profiled runs: ours {ours.seconds:.1f} s against "
        f"{ref.seconds:.1f} s; these overlap: sampling and telling include their reads and writes):**",
        "",
    ]
    for extra, label, n_ours, t_ours, n_ref, t_ref, what in sorted(rows, reverse=True):
        lines.append(
            f"- {label}: {extra:+.1f} s (ours {t_ours:.1f} s in {n_ours} calls, the reference {t_ref:.1f} s "
            f"in {n_ref}): {what}."
        )
    lines += [
        "",
        f"In the last timed round our study held {last.told} trials for {last.trained} Ray trials "
        f"({last.distinct} distinct architectures), the reference's {runs['reference'][-1].told} trials covered "
        f"{runs['reference'][-1].distinct}. With trials that train for real, the reuse of a duplicate (a "
        "sample and a tell) saves far more than it costs.",
        "",
    ]
    return lines


def render(
    setups: list[Setup],
    runs: dict[str, dict[str, list[Run]]],
    demos: list[Demo],
    profiles: dict[str, dict[str, Profile]],
    quick: bool,
    load: tuple[float, float],
    code: str,
) -> str:
    first = setups[0]
    rounds = len(runs[first.sampler]["ours"])
    lines = [
        f"Code: {code}. Load average (1 min) at the start / the end: {load[0]:.1f} / {load[1]:.1f} (anything else "
        "running on the machine makes every figure slower and noisier).",
        "",
        "### Our search path against bare Ray Tune + stock OptunaSearch (trivial trials)",
        "",
        f"{first.trials} trials that train nothing ({first.epochs} per-epoch reports and a complete result each), "
        f"{first.concurrency} at a time, 1 CPU each, the demo space, sampler seed 0, no baselines enqueued; "
        f"{rounds} round(s) of each path, alternating which goes first; Ray started once before all of them "
        "(`ray.init(num_cpus=2)`), so its start-up is outside every timing.",
        "",
        "| sampler | path | best (s) | median (s) | ms per Ray trial (median) | Ray trials | distinct architectures "
        "| study trials |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setup in setups:
        by_path = runs[setup.sampler]
        for name, label in (
            ("reference", "bare `tune.Tuner` + stock `OptunaSearch` (reference)"),
            ("ours", "ours: `nas.run_search(config, trainable=trivial)`"),
        ):
            seconds = [r.seconds for r in by_path[name]]
            last = by_path[name][-1]
            lines.append(
                f"| {setup.sampler} | {label} | {min(seconds):.2f} | {statistics.median(seconds):.2f} | "
                f"{1000 * statistics.median(seconds) / setup.trials:.0f} | {last.trained} | {last.distinct} | "
                f"{last.told} |"
            )
    lines.append("")
    for setup in setups:
        by_path = runs[setup.sampler]
        median = ratio(by_path)
        lines.append(
            f"- {setup.sampler}: ours / reference **{median:.2f}×** (medians), {ratio(by_path, min):.2f}× (best "
            f"rounds); goal ≤ {GOAL_RATIO}×: **{'met' if median <= GOAL_RATIO else 'not met'}**"
        )
    lines += [
        "",
        "Both paths are timed from opening the storage to having the trials back: loading the (tiny) data, "
        "creating the study, the Tuner and its trials, reading the trials at the end. The reference keeps "
        "its study in an Optuna RDB storage in SQLite too, samples through the same `nas.DefineByRun` with "
        "the same sampler (`nas.make_sampler`), and uses the same `tune.with_parameters` data and "
        "`reuse_actors=True` as ours; so the difference is our searcher (the cost screen, duplicate reuse, "
        "the study-wide budget, heartbeats, the trial records, weight pruning), our progress callback and "
        "WAL mode on the database. *Distinct architectures* counts different specs among the Ray trials, "
        "*study trials* what the study holds: ours tells a duplicate of a finished trial its values without "
        "running it (REUSED) and samples again, so it runs as many Ray trials on more distinct "
        "architectures, at the price of the extra sampling; the reference runs duplicates again.",
        "",
        "### Fraction of a demo search's wall time outside training",
        "",
        "Real searches (`nas.run_search(config)`, the real trainable) on the built-in synthetic 2D data, "
        f"{demos[0].concurrency} trials at a time (`auto`), 1 CPU (1 thread) each, NSGA-II with the baselines enqueued "
        "first, the demo space; each on its own Ray runtime, started as `nas search` starts it (workers "
        "preloaded) before the clock starts. *Ideal* is the sum of the trials' training time "
        f"(`train_seconds` of the COMPLETE trials) / {demos[0].concurrency}, the wall time if nothing but "
        "training ran, perfectly packed; *outside training* is 1 − ideal / wall. The last two columns split "
        "that: inside the trial functions but outside the training loop (from Tune's `time_total_s` of each "
        "trial), and outside the trial functions; *before the first trial* runs from the call until the study "
        "asks for its first trial (storage, data, study, enqueued baselines, the Tuner), *after the last* from "
        "the last trial's result until the call returns. The searches run `concurrency: auto` (as many trials "
        "at once as the runtime's CPUs hold at 1 CPU each); *CPUs no trial held* is 1 − Σ every trial's phases "
        "(its slot time, from being asked for until the driver has its result) ÷ (wall × the runtime's CPUs).",
        "",
        "| search | trials | wall (s) | Σ train (s) | ideal (s) | outside training | goal "
        "| in trials, not training | outside trials | before the first trial (s) | after the last (s) "
        "| CPUs no trial held |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in demos:
        split = d.split
        cells = [f"{100 * f:.0f}%" for f in split] if split else ["?", "?"]
        states = ", ".join(f"{n} {s}" for s, n in sorted(d.states.items()))
        goal = f"≤ {100 * d.goal:.0f}%: {'met' if d.outside <= d.goal else 'not met'}"
        lines.append(
            f"| {d.name} | {states} | {d.wall_s:.1f} | {sum(d.train_s):.1f} | {d.ideal_s:.1f} | "
            f"**{100 * d.outside:.0f}%** | {goal} | {cells[0]} | {cells[1]} | {d.before_first_s:.1f} | "
            f"{d.after_last_s:.1f} | "
            + (f"{100 * d.cpus_idle:.0f}% of {d.cpus:g}" if d.cpus_idle is not None else "?")
            + " |"
        )
    if any(d.phases for d in demos):
        lines += [
            "",
            "Where each slot's time went: every trained trial records its phases (`phase_seconds` in the "
            "study); the mean per trial, and in brackets their sum as a share of the search's slot time "
            "(wall × trials at a time). The first trial of each slot carries the actor's start.",
            "",
            *phase_table(demos),
        ]
    lines += [
        "",
        "What counts as training: `train_seconds`, the trainer's own loop (every epoch's steps, its "
        "validation and its report to Tune). Everything else counts as outside: in the trial, building "
        "the model, counting its FLOPs, the loader and the head prior, the final metrics of the best "
        "weights, latency and memory measurement and saving the weights; outside it, the driver (storage, "
        "data, sampling, records), Ray (starting the trial actors, whose imports of torch and MONAI are "
        "paid once per search and actor, scheduling, results, Tune's loggers) and slots left idle while "
        "fewer trials than the concurrency remain. With 2 cores and 2 trials at a time, the driver and Ray "
        "also take CPU time from the training itself. These fixed costs per trial and per search weigh "
        "less as trials train longer: the demo preset trains 20 trials of 10 epochs.",
        "",
        "### Notes",
        "",
    ]
    if not profiles:
        why = "a quick run" if quick else f"ours is within {GOAL_RATIO}× of the reference"
        lines.append(f"Not profiled ({why}); `--profile` profiles one more run of each path.")
    for sampler, pair in profiles.items():
        ours, ref = pair["ours"], pair["reference"]
        lines += causes(sampler, ours, ref, runs[sampler])
        lines += [
            f"**{sampler}**: one more run of each path under cProfile, on the driver's main thread (where Tune "
            "calls the searcher); cumulative seconds, calls in brackets:",
            "",
            "| function | ours | reference |",
            "|---|---|---|",
            f"| whole run (wall, profiled) | {ours.seconds:.2f} | {ref.seconds:.2f} |",
        ]
        keys = sorted(
            set(ours.rows) | set(ref.rows), key=lambda k: -max(d.get(k, (0, 0.0))[1] for d in (ours.rows, ref.rows))
        )
        for key in keys:
            cells = [f"{d[key][1]:.2f} ({d[key][0]})" if key in d else "" for d in (ours.rows, ref.rows)]
            lines.append(f"| `{key}` | {cells[0]} | {cells[1]} |")
        lines += [
            "",
            f"Our own functions by cumulative driver time ({sampler}, ours, profiled run):",
            "",
            "| function | calls | cumulative (s) |",
            "|---|---|---|",
        ]
        lines += [f"| `{name}` | {calls} | {seconds:.2f} |" for name, calls, seconds in ours.top]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def shown_command(argv: Sequence[str]) -> str:
    """The command line, without ``--output`` and its path."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--output":
            skip = True
        elif not arg.startswith("--output="):
            shown.append(shlex.quote(arg))
    return " ".join(["python bench/orchestration.py", *shown])


def collect(
    trials: int, rounds: int, samplers: Sequence[str], quick: bool, profile_all: bool = False
) -> tuple[str, list[_report.Headline]]:
    """Run the orchestration benchmarks; the markdown body and the headline rows."""
    setups = [Setup(trials=trials, concurrency=2, epochs=3, sampler=s) for s in samplers]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    module = sys.modules.get(__name__)
    by_value = __name__ != "__main__" and module is not None
    if by_value:
        # bench/ is not a package: Ray's workers cannot import this module by name, so its trial
        # function travels by value (run as a script, __main__'s functions already do).
        ray.cloudpickle.register_pickle_by_value(module)
    load_start, code = os.getloadavg()[0], _machine.commit(PACKAGES)  # the driver's code is imported by now
    started_ray = not ray.is_initialized()
    if started_ray:  # a runtime of our own, even if a cluster runs on this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
            root = Path(tmp)
            runs = {setup.sampler: compare(setup, rounds, root) for setup in setups}
            profiles: dict[str, dict[str, Profile]] = {}
            for setup in setups:
                # Unasked, only the first sampler that misses the goal (the figures are much alike).
                missed = not quick and ratio(runs[setup.sampler]) > GOAL_RATIO and not profiles
                if profile_all or missed:
                    profiles[setup.sampler] = {
                        name: profile(functools.partial(runner, setup, root, f"{setup.sampler}-profile-{name}"))
                        for name, runner in RUNNERS.items()
                    }
            if started_ray:  # each demo search starts the runtime `nas search` would
                ray.shutdown()
                started_ray = False
            demos = [demo_search(root, *d) for d in (QUICK_DEMOS if quick else DEMOS)]
    finally:
        if started_ray:
            ray.shutdown()
        if by_value:
            ray.cloudpickle.unregister_pickle_by_value(module)
    body = render(setups, runs, demos, profiles, quick, (load_start, os.getloadavg()[0]), code)
    return body, headlines(setups, runs, demos)


def headlines(setups: list[Setup], runs: dict[str, dict[str, list[Run]]], demos: list[Demo]) -> list[_report.Headline]:
    rows = []
    for setup in setups:
        by_path = runs[setup.sampler]
        median = ratio(by_path)
        rows.append(
            _report.Headline(
                area="Orchestration",
                what=f"{setup.trials} trivial trials through our search path, {setup.sampler} (median of "
                f"{len(by_path['ours'])} rounds)",
                figure=f"{statistics.median(r.seconds for r in by_path['ours']):.2f} s",
                reference="bare Ray Tune + stock OptunaSearch "
                f"{statistics.median(r.seconds for r in by_path['reference']):.2f} s",
                ratio=median,
                goal=f"≤ {GOAL_RATIO}×",
                met=median <= GOAL_RATIO,
            )
        )
    for d in demos:
        rows.append(
            _report.Headline(
                area="Orchestration",
                what=f"share of a small search's wall time outside training: {d.name}",
                figure=f"{100 * d.outside:.0f}% (wall {d.wall_s:.1f} s)",
                reference=f"training alone, perfectly packed {d.ideal_s:.1f} s",
                ratio=d.wall_s / d.ideal_s if d.ideal_s else None,
                goal=f"≤ {100 * d.goal:.0f}% outside",
                met=d.outside <= d.goal,
            )
        )
    return rows


def measure(quick: bool) -> _report.Section:
    """The harness's run: 40 trials, 3 rounds, NSGA-II and TPE (quick: 8 trials, one round, NSGA-II)."""
    body, rows = collect(8 if quick else 40, 1 if quick else 3, ("nsga2",) if quick else ("nsga2", "tpe"), quick)
    return _report.Section(
        "Orchestration", body, rows, versions=(f"ray {ray.__version__}", f"optuna {optuna.__version__}")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 trivial trials, one round, NSGA-II; a tiny demo search")
    parser.add_argument("--trials", type=int, default=None, help="trivial trials per run (default 40; quick 8)")
    parser.add_argument("--rounds", type=int, default=None, help="runs of each path (default 3; quick 1)")
    parser.add_argument(
        "--samplers", default=None, help="comma-separated: nsga2, tpe, random (default nsga2,tpe; quick nsga2)"
    )
    parser.add_argument("--profile", action="store_true", help="profile one more run of each path, for every sampler")
    parser.add_argument("--output", type=Path, default=None, help="also write the results to this markdown file")
    args = parser.parse_args(argv)
    trials = args.trials or (8 if args.quick else 40)
    rounds = args.rounds or (1 if args.quick else 3)
    samplers = (args.samplers or ("nsga2" if args.quick else "nsga2,tpe")).split(",")
    if any(s not in ("nsga2", "tpe", "random") for s in samplers):
        parser.error(f"--samplers: {args.samplers!r}; expected a comma-separated list of nsga2, tpe, random")
    body, rows = collect(trials, rounds, samplers, args.quick, args.profile)
    versions = (f"ray {ray.__version__}", f"optuna {optuna.__version__}")
    command = shown_command(sys.argv[1:] if argv is None else argv)
    _report.write_alone(_report.Section("Orchestration", body, rows, versions), command, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
