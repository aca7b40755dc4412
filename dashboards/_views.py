"""What each dashboard view shows, computed from trial records with no Plotly in it.

Every figure of the dashboard and the report is built in two steps (Optuna's visualisation
modules do the same): a function here collects the numbers into a small frozen record, tested on
hand-made trials, and a function in ``_figures`` turns the record into a Plotly figure.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studies import (
    INFEASIBLE,
    OBJECTIVE_DIRECTIONS,
    TrialRecord,
    complete_records,
    flatten_spec,
    hypervolume_2d,
    knee_record,
    pareto_mask,
    state_counts,
    verdict,
)

#: Trial states a view can show; COMPLETE trials are always shown, the others on request. REUSED
#: (a duplicate given its twin's result) and INFEASIBLE (refused untrained by a constraint, with its
#: reason) are states of a record, not of Optuna: Optuna stores them as COMPLETE or FAIL.
STATES: tuple[str, ...] = ("COMPLETE", "REUSED", "INFEASIBLE", "PRUNED", "FAIL", "RUNNING", "WAITING")
#: States drawn at their own objective values; the others at the objectives' bound (Dice 0).
VALUED_STATES = ("COMPLETE", "REUSED")
NO_ATTENTION = "—"


def first_line(text: str | None) -> str:
    """The first non-blank line of an error text ('' for none)."""
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _dice(r: TrialRecord) -> float | None:
    if r.dice is not None:
        return r.dice
    curve = [h.get("val_dice") for h in r.history if h.get("val_dice") is not None]
    return max(float(v) for v in curve if v is not None) if curve else None  # a pruned trial's best so far


def _gflops(r: TrialRecord) -> float | None:
    if r.gflops is not None:
        return r.gflops
    return r.flops / 1e9 if r.flops is not None else None


@dataclass(frozen=True)
class Objective:
    """One axis a user can put on the Pareto plot."""

    name: str
    label: str
    maximize: bool
    of: Callable[[TrialRecord], float | None]
    #: The worst value that still counts for hypervolume; None: 10% beyond the worst value seen.
    bound: float | None = None


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("dice", "validation Dice", True, _dice, bound=0.0),
        Objective("gflops", "GFLOPs (forward, batch 1)", False, _gflops, bound=None),
        Objective("params", "parameters (millions)", False, lambda r: None if r.params is None else r.params / 1e6),
        Objective("memory", "peak training memory (MB)", False, lambda r: r.peak_memory_mb),
        Objective("train_s", "training time (s)", False, lambda r: r.train_seconds),
        Objective("latency", "inference latency (ms, batch 1)", False, lambda r: r.latency_ms),
    )
}


def objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"objective {name!r} is not known; expected one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


# ---------------------------------------------------------------- what a trial's architecture is


def _attention(r: TrialRecord) -> Mapping[str, Any]:
    return (r.spec or {}).get("attention", {}) if r.spec else {}


def placement_key(r: TrialRecord) -> str:
    """Where the attention sits, e.g. ``skip`` or ``encoder+skip`` (``—`` for no attention)."""
    att = _attention(r)
    if not r.spec:
        return "?"
    if att.get("block", "none") == "none" or not att.get("placement"):
        return NO_ATTENTION
    return "+".join(sorted(att["placement"]))


def arrangement_key(r: TrialRecord) -> str:
    """How two mechanisms are composed (``single`` for one mechanism, ``—`` for none)."""
    att = _attention(r)
    if att.get("block", "none") == "none":
        return NO_ATTENTION
    return str(att.get("options", {}).get("arrangement", "single")) if att.get("block") == "compose" else "single"


def shortcut_key(r: TrialRecord) -> str:
    """The composition's shortcut position (``—`` when there is no composition)."""
    att = _attention(r)
    if att.get("block") != "compose":
        return NO_ATTENTION
    return str(att.get("options", {}).get("shortcut", "?"))


def levels_key(r: TrialRecord) -> str:
    att = _attention(r)
    if att.get("block", "none") == "none":
        return NO_ATTENTION
    return " ".join(f"{k}{list(v)}".replace(" ", "") for k, v in sorted(att.get("placement", {}).items()))


CATEGORIES: dict[str, tuple[str, Callable[[TrialRecord], str]]] = {
    "block": ("attention type", lambda r: r.block),
    "placement": ("placement", placement_key),
    "arrangement": ("arrangement", arrangement_key),
    "shortcut": ("shortcut", shortcut_key),
}


def category(name: str) -> tuple[str, Callable[[TrialRecord], str]]:
    if name not in CATEGORIES:
        raise ValueError(f"category {name!r} is not known; expected one of {', '.join(CATEGORIES)}")
    return CATEGORIES[name]


# ---------------------------------------------------------------- the Pareto scatter


@dataclass(frozen=True)
class Point:
    study: str
    number: int
    state: str
    x: float
    y: float
    color_key: str
    symbol_key: str
    label: str
    on_front: bool


@dataclass(frozen=True)
class IntervalBar:
    """One architecture's Dice over its runs: mean and 95% t-interval, at its GFLOPs."""

    x: float
    mean: float
    low: float
    high: float
    n: int
    label: str
    tied: bool


def interval_bars(records: Sequence[TrialRecord]) -> tuple[IntervalBar, ...]:
    """The architectures of ``studies.verdict`` with an interval (two or more runs)."""
    result = verdict(records)
    front = {a.spec_hash: a for a in result.front}
    bars = []
    for a in result.architectures:
        interval, gflops = a.interval, a.objectives.get("gflops", a.gflops)
        if interval is None or gflops is None:
            continue
        tied = a.spec_hash in front and front[a.spec_hash].tied_with is not None
        bars.append(IntervalBar(float(gflops), a.mean, interval[0], interval[1], a.n, a.label, tied))
    return tuple(bars)


@dataclass(frozen=True)
class FrontData:
    """The Pareto scatter of one or more studies on two chosen objectives."""

    x: Objective
    y: Objective
    color_by: str
    symbol_by: str
    points: tuple[Point, ...]
    fronts: Mapping[str, tuple[Point, ...]]  # per study, sorted by x: the staircase
    hidden: Mapping[str, int]  # trials not drawn, by reason
    #: Every colour key of the studies' trials, drawn or not: colours stay put when states are toggled.
    color_keys: tuple[str, ...] = ()
    #: Per study, the knee of its Dice/GFLOPs front (what ``nas export --knee`` takes); only on those axes.
    knees: Mapping[str, int] = field(default_factory=dict)
    #: Per study, its architectures with two or more runs (Dice against GFLOPs only): the mean and
    #: 95% t-interval of Dice over seeds, from ``studies.verdict`` (the confirm stage when it ran).
    bars: Mapping[str, tuple[IntervalBar, ...]] = field(default_factory=dict)

    @property
    def overlay(self) -> bool:
        return len(self.fronts) > 1


def _front_mask(xs: Sequence[float], ys: Sequence[float], x: Objective, y: Objective) -> np.ndarray:
    if not xs:
        return np.zeros(0, dtype=bool)
    return pareto_mask(np.column_stack([xs, ys]), [x.maximize, y.maximize])


def study_front(records: Sequence[TrialRecord], x: Objective, y: Objective) -> list[tuple[TrialRecord, float, float]]:
    """The Pareto set of a study's COMPLETE trials in ``x`` and ``y``: each record with its two values
    (trials lacking either value, or with a non-finite one, are never on it)."""
    valued = [
        (r, vx, vy)
        for r in complete_records(records)
        if (vx := x.of(r)) is not None and (vy := y.of(r)) is not None and math.isfinite(vx) and math.isfinite(vy)
    ]
    mask = _front_mask([v[1] for v in valued], [v[2] for v in valued], x, y)
    return [v for v, m in zip(valued, mask, strict=True) if m]


def front_data(
    studies: Mapping[str, Sequence[TrialRecord]],
    *,
    x: str = "gflops",
    y: str = "dice",
    states: Sequence[str] = ("COMPLETE",),
    color_by: str = "block",
    symbol_by: str = "placement",
) -> FrontData:
    """Points of the chosen states and each study's Pareto set among its COMPLETE trials.

    A pruned trial is drawn at its best Dice so far, a failed one at Dice 0; neither is ever on the
    front. Trials that lack a value of either objective are counted in ``hidden``.
    """
    ox, oy = objective(x), objective(y)
    if ox.name == oy.name:
        raise ValueError(f"choose two different objectives (both axes are {ox.name!r})")
    _, color_of = category(color_by)
    _, symbol_of = category(symbol_by)
    shown = {"COMPLETE", *states}
    points: list[Point] = []
    fronts: dict[str, tuple[Point, ...]] = {}
    hidden: dict[str, int] = {}
    for study, records in studies.items():
        on_front = {r.number for r, _, _ in study_front(records, ox, oy)}
        study_points: list[Point] = []
        for r in records:
            if r.state not in shown:
                hidden[r.state] = hidden.get(r.state, 0) + 1
                continue
            vx, vy = ox.of(r), oy.of(r)
            if r.state == "INFEASIBLE":  # told with placeholder values (Dice 0, infinite latency)
                vx = ox.bound if ox.maximize or vx is None or not math.isfinite(vx) else vx
                vy = oy.bound if oy.maximize or vy is None or not math.isfinite(vy) else vy
            elif r.state not in VALUED_STATES:  # no objective values: drawn at the bound (Dice 0), if any
                vx = ox.bound if vx is None else vx
                vy = oy.bound if vy is None else vy
            if vx is None or vy is None or not (math.isfinite(vx) and math.isfinite(vy)):
                hidden["no value"] = hidden.get("no value", 0) + 1
                continue
            point = Point(
                study=study,
                number=r.number,
                state=r.state,
                x=float(vx),
                y=float(vy),
                color_key=color_of(r),
                symbol_key=symbol_of(r),
                label=r.label,
                on_front=r.number in on_front,
            )
            study_points.append(point)
        points.extend(study_points)
        fronts[study] = tuple(sorted((p for p in study_points if p.on_front), key=lambda p: (p.x, p.y)))
    keys = tuple(sorted({color_of(r) for records in studies.values() for r in records}))
    knees = {}
    if {ox.name, oy.name} == {"gflops", "dice"}:
        knees = {study: knee_record(records).number for study, records in studies.items() if fronts.get(study)}
    bars = {}
    if (ox.name, oy.name) == ("gflops", "dice"):
        bars = {study: found for study, records in studies.items() if (found := interval_bars(records))}
    return FrontData(ox, oy, color_by, symbol_by, tuple(points), fronts, hidden, keys, knees, bars)


# ---------------------------------------------------------------- hypervolume


def reference_point(studies: Mapping[str, Sequence[TrialRecord]], x: Objective, y: Objective) -> tuple[float, float]:
    """A shared hypervolume reference: each objective's bound, or 10% beyond the worst value seen."""
    ref: list[float] = []
    for o in (x, y):
        if o.bound is not None:
            ref.append(o.bound)
            continue
        seen = [v for rs in studies.values() for r in complete_records(rs) if (v := o.of(r)) is not None]
        if not seen:
            ref.append(0.0)
            continue
        worst = min(seen) if o.maximize else max(seen)
        span = (max(seen) - min(seen)) or abs(worst) or 1.0
        ref.append(worst - 0.1 * span if o.maximize else worst + 0.1 * span)
    return ref[0], ref[1]


@dataclass(frozen=True)
class HypervolumeCurve:
    study: str
    numbers: tuple[int, ...]
    values: tuple[float, ...]


def hypervolume_curve(
    study: str, records: Sequence[TrialRecord], x: Objective, y: Objective, reference: tuple[float, float]
) -> HypervolumeCurve:
    """Hypervolume of the COMPLETE trials among the first k, for every trial number k.

    Incremental: a trial dominated by the running front leaves the value unchanged, so the cost is
    O(n·|front|) rather than a fresh front per trial.
    """
    maximize = [x.maximize, y.maximize]
    sx, sy = (-1.0 if x.maximize else 1.0), (-1.0 if y.maximize else 1.0)
    front: list[tuple[float, float]] = []  # the running front as costs (both minimised): a few dozen
    current = 0.0
    numbers: list[int] = []
    values: list[float] = []
    done = {r.number for r in complete_records(records)}
    # plain floats, not a numpy array per trial: 50,000 trials took 0.3-0.5 s in numpy's small-array calls
    for r in sorted(records, key=lambda r: r.number):
        if r.number in done and (vx := x.of(r)) is not None and (vy := y.of(r)) is not None:
            cx, cy = vx * sx, vy * sy
            if not any(fx <= cx and fy <= cy for fx, fy in front):
                front = [(fx, fy) for fx, fy in front if not (cx <= fx and cy <= fy)]
                front.append((cx, cy))
                current = hypervolume_2d(np.array(front) * (sx, sy), maximize, reference)
        numbers.append(r.number)
        values.append(current)
    return HypervolumeCurve(study, tuple(numbers), tuple(values))


# ---------------------------------------------------------------- the study list


@dataclass(frozen=True)
class StudySummary:
    name: str
    trials: int
    counts: Mapping[str, int]
    best_dice: float | None
    pareto_size: int
    hypervolume: float
    reference: tuple[float, float]

    @property
    def counts_text(self) -> str:
        return ", ".join(f"{state} {n}" for state, n in self.counts.items()) or "no trials"


def study_summary(
    name: str, records: Sequence[TrialRecord], reference: tuple[float, float] | None = None
) -> StudySummary:
    """Counts by state, best Dice, Pareto size and hypervolume above ``reference`` (GFLOPs, Dice):
    the study's fixed reference (``studies.hv_reference``); without one (a study made before
    2026-12), Dice and GFLOPs 10% beyond the worst seen, which moves as trials are added."""
    ox, oy = OBJECTIVES["gflops"], OBJECTIVES["dice"]
    # the front alone: the Pareto tab's points, knee and seeds' intervals are not needed here
    front = study_front(records, ox, oy)
    if reference is None:
        reference = reference_point({name: records}, ox, oy)
    hv = hypervolume_2d(np.array([[vx, vy] for _, vx, vy in front]), [False, True], reference) if front else 0.0
    dices = [r.dice for r in complete_records(records) if r.dice is not None]
    return StudySummary(
        name=name,
        trials=len(records),
        counts=state_counts(records),
        best_dice=max(dices) if dices else None,
        pareto_size=len(front),
        hypervolume=hv,
        reference=reference,
    )


def empty_reason(name: str, records: Sequence[TrialRecord]) -> str | None:
    """Why a study has nothing to plot, in words (None when it has complete trials)."""
    if not records:
        return f"Study {name!r} has no trials yet. Start one with: nas search --study {shlex.quote(name)}"
    if complete_records(records):
        return None
    counts = ", ".join(f"{n} {state}" for state, n in state_counts(records).items())
    errors = [r.error for r in records if r.error]
    first = f" First error: {first_line(errors[0])}" if errors else ""
    return f"Study {name!r} has no complete trial yet ({counts}).{first}"


# ---------------------------------------------------------------- the ablation view


@dataclass(frozen=True)
class AblationFacet:
    title: str
    groups: Mapping[str, tuple[float, ...]]  # group → Dice of its complete trials


def ablation_data(records: Sequence[TrialRecord]) -> tuple[AblationFacet, ...]:
    """The papers' ablation questions: Dice by attention type, placement, arrangement and shortcut."""
    done = [r for r in complete_records(records) if r.dice is not None]
    facets = []
    for title, key_of in CATEGORIES.values():
        groups: dict[str, list[float]] = {}
        for r in done:
            groups.setdefault(key_of(r), []).append(float(r.dice))  # type: ignore[arg-type]
        ordered = dict(sorted(groups.items(), key=lambda kv: -float(np.median(kv[1]))))
        facets.append(AblationFacet(title, {k: tuple(v) for k, v in ordered.items()}))
    return tuple(facets)


# ---------------------------------------------------------------- parallel coordinates


@dataclass(frozen=True)
class Axis:
    label: str
    values: tuple[float, ...]
    ticks: tuple[str, ...] = ()  # for a categorical axis: the name of each integer value


def parallel_data(records: Sequence[TrialRecord]) -> tuple[Axis, ...]:
    """One axis per architecture choice and objective, one line per COMPLETE trial."""
    done = [r for r in complete_records(records) if r.spec]
    axes: list[Axis] = []
    for title, key_of in CATEGORIES.values():
        keys = [key_of(r) for r in done]
        names = tuple(sorted(set(keys)))
        axes.append(Axis(title, tuple(float(names.index(k)) for k in keys), names))
    for label, of in (
        ("levels", lambda r: float(len(r.spec["channels"]))),
        ("base width", lambda r: float(r.spec["channels"][0])),
    ):
        axes.append(Axis(label, tuple(of(r) for r in done)))
    for name in ("params", "gflops", "dice"):
        o = OBJECTIVES[name]
        axes.append(Axis(o.label, tuple(float(o.of(r) or 0.0) for r in done)))
    return tuple(axes)


# ---------------------------------------------------------------- the trials table and one trial


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def trial_rows(records: Sequence[TrialRecord], states: Sequence[str] = STATES) -> list[dict[str, Any]]:
    """Rows of the sortable trials table, for the given states."""
    rows = []
    for r in records:
        state = INFEASIBLE if r.infeasible else r.state
        if state not in states:
            continue
        rows.append(
            {
                "trial": r.number,
                "state": state,
                "dice": _round(_dice(r) if state in ("COMPLETE", "REUSED", "PRUNED") else None, 4),
                "gflops": _round(_gflops(r), 4),
                "params": r.params,
                "memory_mb": _round(r.peak_memory_mb, 1),
                "train_s": _round(r.train_seconds, 1),
                "architecture": r.label,
                "error": first_line(r.error)[:160]
                or (f"reuses trial {r.reused_from}'s result" if r.reused_from is not None else ""),
            }
        )
    return rows


@dataclass(frozen=True)
class TrialDetail:
    study: str
    number: int
    state: str
    label: str
    spec: Mapping[str, Any] | None
    metrics: tuple[tuple[str, str], ...]
    epochs: tuple[float, ...]
    curves: Mapping[str, tuple[float, ...]]  # val_dice, loss per epoch
    export_command: str


def export_command(study: str, number: int, storage: str) -> str:
    return (
        f"nas export {shlex.quote(study)} --trial {number} --storage {shlex.quote(storage)}"
        f" -o {shlex.quote(f'export-{study}-t{number}')}"
    )


def trial_detail(study: str, record: TrialRecord, storage: str) -> TrialDetail:
    """What clicking a point shows: metrics, learning curve and the command that exports it."""

    def fmt(value: float | int | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    metrics: tuple[tuple[str, str], ...] = (
        ("state", "INFEASIBLE" if record.infeasible else record.state),
        ("validation Dice", fmt(_dice(record), ".4f")),
        ("GFLOPs", fmt(_gflops(record), ".4f")),
        ("parameters", fmt(record.params, ",")),
        ("peak memory (MB), estimated", fmt(record.peak_memory_mb, ".1f")),
        ("peak memory (MB), measured", fmt(record.measured_memory_mb, ".1f")),
        ("latency (ms, batch 1)", fmt(record.latency_ms, ".2f")),
        ("training time (s)", fmt(record.train_seconds, ".1f")),
        ("epochs", f"{len(record.history)} of {record.epochs}" if record.epochs else str(len(record.history))),
        ("best epoch", fmt(record.best_epoch, "d")),
        ("spec hash", (record.spec_hash or "—")[:16]),
    )
    for name, value in ((record.metrics or {}).get("mean") or {}).items():
        if name != "dice" and isinstance(value, int | float):
            metrics = (*metrics, (f"validation {name}", fmt(float(value), ".4f")))
    for name, value in ((record.test_metrics or {}).get("mean") or {}).items():
        if isinstance(value, int | float):
            metrics = (*metrics, (f"test {name}", fmt(float(value), ".4f")))
    epochs = tuple(float(h.get("epoch", i + 1)) for i, h in enumerate(record.history))
    curves = {
        key: tuple(float(h.get(key, math.nan)) for h in record.history)
        for key in ("val_dice", "loss")
        if any(key in h for h in record.history)
    }
    if record.error:
        metrics = (*metrics, ("error", first_line(record.error)[:300]))
    return TrialDetail(
        study=study,
        number=record.number,
        state=record.state,
        label=record.label,
        spec=record.spec,
        metrics=metrics,
        epochs=epochs,
        curves=curves,
        export_command=export_command(study, record.number, storage)
        if record.state == "COMPLETE"
        else f"(trial {record.number} is {record.state}: only COMPLETE trials can be exported)",
    )


# ---------------------------------------------------------------- per-objective history


@dataclass(frozen=True)
class ObjectiveHistory:
    """One objective of a study by trial number (COMPLETE trials) and the best value so far."""

    name: str
    label: str
    maximize: bool
    numbers: tuple[int, ...]
    values: tuple[float, ...]
    #: The best value among the trials up to and including each of ``numbers``.
    best: tuple[float, ...]


def study_objective_names(records: Sequence[TrialRecord]) -> tuple[str, ...]:
    """The objectives the study optimises, in order (Dice and GFLOPs for a study that has no trial)."""
    return records[0].objectives if records else ("dice", "gflops")


def objective_history(records: Sequence[TrialRecord]) -> tuple[ObjectiveHistory, ...]:
    """Per objective of the study: each COMPLETE trial's value by trial number, and the running best
    (the highest Dice so far, the lowest GFLOPs so far)."""
    done = sorted(complete_records(records), key=lambda r: r.number)
    out = []
    for name in study_objective_names(records):
        maximize = OBJECTIVE_DIRECTIONS.get(name, "maximize") == "maximize"
        label = OBJECTIVES[name].label if name in OBJECTIVES else name
        numbers: list[int] = []
        values: list[float] = []
        best: list[float] = []
        for r in done:
            value = r.objective(name)
            if value is None or not math.isfinite(value):
                continue
            numbers.append(r.number)
            values.append(float(value))
            best.append(float(value) if not best else (max if maximize else min)(best[-1], float(value)))
        out.append(ObjectiveHistory(name, label, maximize, tuple(numbers), tuple(values), tuple(best)))
    return tuple(out)


# ---------------------------------------------------------------- parameter importance

#: Fewer COMPLETE trials than this and the importance is not computed (the view says so).
MIN_IMPORTANCE_TRIALS = 10
MISSING_CHOICE = "—"


@dataclass(frozen=True)
class ParamImportance:
    """How much of one objective's variance each architecture choice explains on its own.

    ``importances``: (column of ``studies.flatten_spec``, ε²) sorted by ε², largest first; empty
    with ``n < needed`` (too few trials) or when no choice varies."""

    objective: str
    label: str
    n: int
    needed: int
    importances: tuple[tuple[str, float], ...]

    @property
    def enough(self) -> bool:
        return self.n >= self.needed


def epsilon_squared(groups: Sequence[Sequence[float]]) -> float:
    """ε² of a one-way ANOVA: (SS_between − (k − 1)·MS_within) / SS_total, clipped at 0.

    The share of the variance that the grouping explains, corrected for the share any grouping into
    k groups explains by chance (η² = SS_between / SS_total is biased upwards, most with many small
    groups). 0 when every trial is its own group (no within-group variance to compare with)."""
    values = np.concatenate([np.asarray(g, dtype=float) for g in groups if len(g)])
    k, n = sum(1 for g in groups if len(g)), len(values)
    total = float(np.sum((values - values.mean()) ** 2))
    if k < 2 or n <= k or total <= 0.0:
        return 0.0
    within = float(sum(np.sum((np.asarray(g, dtype=float) - np.mean(g)) ** 2) for g in groups if len(g)))
    between = total - within
    return max(0.0, (between - (k - 1) * within / (n - k)) / total)


def param_importance(
    records: Sequence[TrialRecord], objective_name: str, *, needed: int = MIN_IMPORTANCE_TRIALS
) -> ParamImportance:
    """First-order importance of every architecture choice (the flattened spec) for one objective.

    Optuna's fANOVA (``FanovaImportanceEvaluator``) needs scikit-learn, which this project does not
    depend on, and ``dashboards`` may not import Optuna. This is the same decomposition's first-order
    term computed on the trials themselves instead of on a random-forest surrogate: for each choice,
    the variance of the objective's mean per value of the choice, as a share of the total variance
    (ε², bias-corrected). Every spec field is a category (``16-32-64`` for channels); a field a
    trial lacks (the arrangement of a single block) is the category ``—``. Choices that go together
    (an arrangement only exists with a composition) share the variance they explain, so the shares
    need not sum to 1 and are not normalised.
    """
    label = OBJECTIVES[objective_name].label if objective_name in OBJECTIVES else objective_name
    rows = []
    for r in complete_records(records):
        value = r.objective(objective_name)
        if r.spec and value is not None and math.isfinite(value):
            rows.append((flatten_spec(r.spec), float(value)))
    if len(rows) < needed:
        return ParamImportance(objective_name, label, len(rows), needed, ())
    columns = sorted({c for flat, _ in rows for c in flat})
    scores = []
    for column in columns:
        groups: dict[str, list[float]] = {}
        for flat, value in rows:
            groups.setdefault(str(flat.get(column, MISSING_CHOICE)), []).append(value)
        if len(groups) > 1:
            scores.append((column, epsilon_squared(list(groups.values()))))
    scores.sort(key=lambda cv: (-cv[1], cv[0]))
    return ParamImportance(objective_name, label, len(rows), needed, tuple(scores))


# ---------------------------------------------------------------- learning curves of several trials


@dataclass(frozen=True)
class CurveSet:
    """Validation Dice per epoch of several trials, for one overlaid figure."""

    #: (legend name, epochs, val_dice) per trial, in the order asked for; trials without a curve left out.
    curves: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...]
    missing: tuple[int, ...]  # the asked-for trials that recorded no validation Dice


def curve_set(records: Sequence[TrialRecord], numbers: Sequence[int]) -> CurveSet:
    by_number = {r.number: r for r in records}
    curves = []
    missing = []
    for number in numbers:
        r = by_number.get(number)
        points = [
            (float(h.get("epoch", i + 1)), float(h["val_dice"]))
            for i, h in enumerate(r.history if r else ())
            if h.get("val_dice") is not None
        ]
        if r is None or not points:
            missing.append(number)
            continue
        name = f"trial {number} · {r.label}" if r.label else f"trial {number}"
        curves.append((name, tuple(p[0] for p in points), tuple(p[1] for p in points)))
    return CurveSet(tuple(curves), tuple(missing))


# ---------------------------------------------------------------- a GFLOPs budget


def under_budget(records: Sequence[TrialRecord], gflops: float | None) -> list[TrialRecord]:
    """The trials at or below ``gflops`` GFLOPs (all of them for None); a trial of unknown GFLOPs is
    left out under a budget, since it cannot be shown to meet it."""
    if gflops is None:
        return list(records)
    return [r for r in records if (g := _gflops(r)) is not None and g <= gflops]
