"""Trials as plain records, and the queries the CLI and dashboards ask of a study."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from studies._pareto import pareto_mask
from studies._study import OBJECTIVE_DIRECTIONS, OBJECTIVES, study_objectives

# Names of the trial user attributes a search writes.
ATTR_SPEC = "spec"
ATTR_SPEC_HASH = "spec_hash"
ATTR_LABEL = "label"
ATTR_FLOPS = "flops"
ATTR_PARAMS = "params"
ATTR_WEIGHTS = "weights_path"
ATTR_HISTORY = "history"
ATTR_BEST_EPOCH = "best_epoch"
ATTR_EPOCHS = "epochs"
ATTR_ERROR = "error"
ATTR_SECONDS = "train_seconds"
#: Where a trained trial's wall time went, in seconds: in its worker (``build``, ``cost``, ``setup``,
#: ``steps``, ``validation``, ``report``, ``val_metrics``, ``test_metrics``, ``latency``,
#: ``peak_memory``, ``save``) and around it (``start``: from the driver asking for the trial until
#: its function ran; ``return``: from its last result until the driver had it).
ATTR_PHASES = "phase_seconds"
ATTR_MEMORY = "peak_memory_mb"
ATTR_INFEASIBLE = "infeasible"
ATTR_TEST_METRICS = "test_metrics"  # the same on the data's test split, when it has one (never used to select)
ATTR_LATENCY = "latency_ms"  # measured forward latency at batch 1
ATTR_MEASURED_MEMORY = "measured_memory_mb"  # measured peak memory of one training step
ATTR_METRICS = "val_metrics"  # {"mean": {name: value}, "per_class": {class: {name: value}}, "images": n}
ATTR_DICE = "dice"  # best validation Dice, whether or not Dice is an objective
ATTR_SEED = "seed"  # the training seed, when the study trains each architecture with several
ATTR_REUSED_FROM = "reused_from"  # a duplicate (same spec, budget and seed): the trial whose result it reuses
ATTR_ORPHANED = "orphaned"  # FAIL because the driver died while the trial ran (it was enqueued again)
ATTR_COLLAPSED = "collapsed"  # why its validation curve collapsed while its loss fell (trainers.collapse_note)
#: Which stage of the search trained it: ``search`` (the sampled trials) or ``confirm`` (a front member
#: or its no-attention twin trained again with fresh seeds after the search); absent means ``search``.
ATTR_STAGE = "stage"
SEARCH_STAGE = "search"
CONFIRM_STAGE = "confirm"

#: States of a record beyond Optuna's: a spec refused untrained by the constraints, and a duplicate
#: whose result was reused. Optuna stores both as COMPLETE (so the samplers learn from them: the
#: constrained samplers read the violation, every sampler sees the duplicate's values).
INFEASIBLE = "INFEASIBLE"
REUSED = "REUSED"
#: Record states that spent a trial of the search's budget (orphaned FAILs excepted).
SPENT_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


class JSONHistory(Sequence[Mapping[str, float]]):
    """A learning curve kept as the JSON text it was stored as, decoded the first time it is used.

    Most views of a big study never look at a curve (a 50,000-trial study's curves are half its
    attributes' text, and decoding them was 0.7 s of a 3 s first read): the fast reader hands
    them over undecoded. It equals a tuple of the same epochs.
    """

    __slots__ = ("_decoded", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._decoded: tuple[Mapping[str, float], ...] | None = None

    def _epochs(self) -> tuple[Mapping[str, float], ...]:
        if self._decoded is None:
            self._decoded = tuple(json.loads(self._text) or ())
        return self._decoded

    def __getitem__(self, index: Any) -> Any:
        return self._epochs()[index]

    def __len__(self) -> int:
        return len(self._epochs())

    def __iter__(self) -> Iterator[Mapping[str, float]]:
        return iter(self._epochs())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JSONHistory | tuple | list):
            return self._epochs() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as unhashable as the tuple of dicts it stands for

    def __repr__(self) -> str:
        return repr(self._epochs())


@dataclass(frozen=True)
class TrialRecord:
    """What one trial of a search is, independent of Optuna's classes."""

    number: int
    state: str
    values: tuple[float, ...] | None = None
    spec: Mapping[str, Any] | None = None
    spec_hash: str | None = None
    label: str = ""
    flops: int | None = None
    params: int | None = None
    weights_path: str | None = None
    best_epoch: int | None = None
    epochs: int | None = None
    history: Sequence[Mapping[str, float]] = ()  # a tuple, or a JSONHistory from the fast reader
    error: str | None = None
    duration_s: float | None = None
    peak_memory_mb: float | None = None
    train_seconds: float | None = None
    infeasible: bool = False
    metrics: Mapping[str, Any] | None = None  # every validation metric of the best weights (ATTR_METRICS)
    test_metrics: Mapping[str, Any] | None = None
    latency_ms: float | None = None
    measured_memory_mb: float | None = None
    seed: int | None = None
    reused_from: int | None = None
    orphaned: bool = False
    #: The study's objectives: what ``values`` hold, in order.
    objectives: tuple[str, ...] = OBJECTIVES
    best_dice: float | None = None  # ATTR_DICE
    #: Why the validation curve collapsed while the loss fell (None: it did not); see ATTR_COLLAPSED.
    collapsed: str | None = None
    #: ``search`` or ``confirm`` (ATTR_STAGE).
    stage: str = SEARCH_STAGE
    extra: Mapping[str, Any] = field(default_factory=dict)

    def objective(self, name: str) -> float | None:
        """The value of objective ``name`` (one of ``OBJECTIVE_DIRECTIONS``) for this trial, if known."""
        # called for every trial by every view (1.5 million times for a 50,000-trial study's first
        # page): no dict built per call
        if self.values is not None and name in self.objectives:
            return self.values[self.objectives.index(name)]
        if name == "dice":
            return self.best_dice
        if name == "gflops":
            return None if self.flops is None else self.flops / 1e9
        if name == "params":
            return None if self.params is None else float(self.params)
        if name == "latency":
            return self.latency_ms
        if name == "memory":
            return self.measured_memory_mb
        raise KeyError(name)

    @property
    def dice(self) -> float | None:
        return self.objective("dice")

    @property
    def gflops(self) -> float | None:
        return self.objective("gflops")

    @property
    def block(self) -> str:
        """The attention mechanism, for grouping: the block name, or ``a+b`` for a composition."""
        if not self.spec:
            return "?"
        attention = self.spec.get("attention", {})
        block = str(attention.get("block", "none"))
        if block == "compose":
            options = attention.get("options", {})
            return f"{options.get('a')}+{options.get('b')}"
        return block


def record_from_trial(trial: optuna.trial.FrozenTrial, objectives: Sequence[str] = OBJECTIVES) -> TrialRecord:
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    values = tuple(float(v) for v in trial.values) if trial.values is not None else None
    return record_from_parts(trial.number, trial.state.name, values, trial.user_attrs, duration, objectives)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def record_from_parts(
    number: int,
    state: str,
    values: tuple[float, ...] | None,
    attrs: Mapping[str, Any],
    duration_s: float | None,
    objectives: Sequence[str] = OBJECTIVES,
) -> TrialRecord:
    """The one place user attributes become a record (Optuna's API and the fast SQL reader both use it)."""
    if attrs.get(ATTR_INFEASIBLE):
        state = INFEASIBLE
    elif state == "COMPLETE" and attrs.get(ATTR_REUSED_FROM) is not None:
        state = REUSED
    return TrialRecord(
        number=number,
        state=state,
        values=values,
        spec=attrs.get(ATTR_SPEC),
        spec_hash=attrs.get(ATTR_SPEC_HASH),
        label=str(attrs.get(ATTR_LABEL, "")),
        flops=attrs.get(ATTR_FLOPS),
        params=attrs.get(ATTR_PARAMS),
        weights_path=attrs.get(ATTR_WEIGHTS),
        best_epoch=attrs.get(ATTR_BEST_EPOCH),
        epochs=attrs.get(ATTR_EPOCHS),
        history=h if isinstance(h := attrs.get(ATTR_HISTORY, ()), JSONHistory) else tuple(h or ()),
        error=attrs.get(ATTR_ERROR),
        duration_s=duration_s,
        peak_memory_mb=_float_or_none(attrs.get(ATTR_MEMORY)),
        train_seconds=_float_or_none(attrs.get(ATTR_SECONDS)),
        infeasible=bool(attrs.get(ATTR_INFEASIBLE, False)),
        metrics=attrs.get(ATTR_METRICS),
        test_metrics=attrs.get(ATTR_TEST_METRICS),
        latency_ms=_float_or_none(attrs.get(ATTR_LATENCY)),
        measured_memory_mb=_float_or_none(attrs.get(ATTR_MEASURED_MEMORY)),
        seed=attrs.get(ATTR_SEED),
        reused_from=attrs.get(ATTR_REUSED_FROM),
        orphaned=bool(attrs.get(ATTR_ORPHANED, False)),
        objectives=tuple(objectives),
        best_dice=_float_or_none(attrs.get(ATTR_DICE)),
        collapsed=attrs.get(ATTR_COLLAPSED) or None,
        stage=str(attrs.get(ATTR_STAGE) or SEARCH_STAGE),
    )


def spent_trials(records: Sequence[TrialRecord], stage: str = SEARCH_STAGE) -> int:
    """How many trials of a stage's budget the study has used: trials of that stage that trained or
    are training (the search's budget by default; the confirm stage has a budget of its own).

    Specs refused untrained, reused duplicates and trials orphaned by a dead driver (retried) are
    recorded but did not spend the budget.
    """
    return sum(1 for r in records if r.state in SPENT_STATES and not r.orphaned and r.stage == stage)


def trial_records(study: optuna.Study) -> list[TrialRecord]:
    """Every trial of ``study`` as a record, in trial-number order."""
    objectives = study_objectives(study)
    return [record_from_trial(t, objectives) for t in study.get_trials(deepcopy=False)]


def complete_records(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Trials that finished their full budget with finite objective values."""
    return [
        r for r in records if r.state == "COMPLETE" and r.values is not None and all(math.isfinite(v) for v in r.values)
    ]


def pareto_records(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The Pareto set over the study's objectives (default: max Dice, min GFLOPs) among complete
    trials, sorted by GFLOPs."""
    done = complete_records(records)
    if not done:
        return []
    objectives = done[0].objectives
    values = np.array([r.values for r in done], dtype=float)
    mask = pareto_mask(values, [OBJECTIVE_DIRECTIONS[n] == "maximize" for n in objectives])
    front = [r for r, keep in zip(done, mask, strict=True) if keep]
    return sorted(front, key=lambda r: r.gflops if r.gflops is not None else math.inf)


def state_counts(records: Sequence[TrialRecord]) -> dict[str, int]:
    """Number of trials in each state (only states that occur)."""
    return dict(sorted(Counter(r.state for r in records).items()))
