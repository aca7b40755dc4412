"""Our Optuna searcher for Ray Tune: stock sampling, honest trial states, full trial records."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from nas._constraints import CONSTRAINT_KEY, Screen
from nas._resume import ATTR_DRIVER, ATTR_HEARTBEAT, ATTR_INTERRUPTED, ATTR_RETRY_OF, carried, this_driver
from search_spaces import ArchSpec, SampleContext, SearchSpace, sample_spec
from studies import (
    ATTR_BEST_EPOCH,
    ATTR_COLLAPSED,
    ATTR_DICE,
    ATTR_EPOCHS,
    ATTR_ERROR,
    ATTR_FLOPS,
    ATTR_HISTORY,
    ATTR_INFEASIBLE,
    ATTR_LABEL,
    ATTR_LATENCY,
    ATTR_MEASURED_MEMORY,
    ATTR_MEMORY,
    ATTR_METRICS,
    ATTR_ORPHANED,
    ATTR_PARAMS,
    ATTR_PHASES,
    ATTR_REUSED_FROM,
    ATTR_SECONDS,
    ATTR_SEED,
    ATTR_SPEC,
    ATTR_SPEC_HASH,
    ATTR_STAGE,
    ATTR_TEST_METRICS,
    ATTR_WEIGHTS,
    CONFIRM_STAGE,
    OBJECTIVE_DIRECTIONS,
    OBJECTIVES,
    prune_weights,
    record_from_trial,
    set_trial_user_attrs,
    spent_trials,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DefineByRun:
    """The define-by-run function handed to Optuna: sample a spec, record it on the trial.

    A picklable object rather than a closure, because Ray checkpoints the searcher with pickle.
    """

    space: SearchSpace
    context: SampleContext
    #: Train each architecture with training seeds ``0..replicates-1`` (a sampled parameter ``train.seed``).
    replicates: int = 1

    def __call__(self, trial: Any) -> dict[str, Any]:
        spec: ArchSpec = sample_spec(trial, self.space, self.context)
        attrs: dict[str, Any] = {
            ATTR_SPEC: spec.to_dict(),
            ATTR_SPEC_HASH: spec.spec_hash(),
            ATTR_LABEL: spec.short_label(),
        }
        config: dict[str, Any] = {"spec": spec.to_dict(), "trial_number": trial.number}
        if self.replicates > 1:
            config["seed"] = int(trial.suggest_categorical("train.seed", list(range(self.replicates))))
            attrs[ATTR_SEED] = config["seed"]
        if trial.user_attrs.get(ATTR_STAGE) == CONFIRM_STAGE:  # enqueued with its fresh seed
            config["seed"] = int(trial.user_attrs[ATTR_SEED])
            attrs[ATTR_SEED] = config["seed"]
        set_trial_user_attrs(trial, attrs)
        return config


#: Trial user attribute: where the trial ran ({"node_id", "hostname", "pid"} of its Ray worker).
ATTR_WORKER = "worker"


def worker_of(result: Mapping[str, Any]) -> dict[str, Any]:
    """Where a Tune result came from: the Ray node id (reported by the trial), host and worker pid."""
    return {"node_id": result.get("node_id", ""), "hostname": result.get("hostname"), "pid": result.get("pid")}


#: What a reused duplicate copies from the trial it reuses: the result, not that trial's provenance
#: (its driver, weights file, or which orphan it retried).
REUSED_ATTRS = (
    ATTR_DICE,
    ATTR_SPEC,
    ATTR_SPEC_HASH,
    ATTR_LABEL,
    ATTR_FLOPS,
    ATTR_PARAMS,
    ATTR_MEMORY,
    ATTR_METRICS,
    ATTR_TEST_METRICS,
    ATTR_HISTORY,
    ATTR_BEST_EPOCH,
    ATTR_EPOCHS,
    ATTR_SEED,
    ATTR_LATENCY,
    ATTR_MEASURED_MEMORY,
    ATTR_SECONDS,
)

#: After this many sampled specs in a row that need no training (duplicates, infeasible), the space
#: is taken as exhausted and the searcher stops suggesting.
MAX_SKIPPED_IN_A_ROW = 50


class StudySearch(OptunaSearch):
    """Ray's ``OptunaSearch`` with the completion semantics a search record needs.

    The stock adapter tells Optuna COMPLETE whenever the last result holds the metrics, so a trial
    stopped early lands on the Pareto front with partial-training values. Here a trial is:

    - COMPLETE only if its last result says ``complete`` (the full budget ran), with the values
      (dice, gflops) and its cost, weights and learning curve as user attributes;
    - FAIL if it reported ``failed`` or Ray reported an error, with the error text kept;
    - PRUNED otherwise (stopped before the end), its learning curve kept.

    Before a sampled spec reaches Ray it is screened on the driver, and it does not train if:

    - it breaks the cost ``screen``'s constraints: told COMPLETE with Dice 0, its cost and the
      violation as the trial's constraint (Optuna's constrained samplers learn from exactly that),
      marked ``infeasible`` (records show it as INFEASIBLE, never on a front);
    - the study already holds the same spec trained for the same epochs and seed: told COMPLETE with
      that trial's values and ``reused_from`` (records show it as REUSED, never on a front).

    ``trial_budget`` counts the trials that train, across every driver of the study (a resumed
    search or a second process on the same database): once it is spent the searcher says FINISHED.
    """

    def __init__(
        self,
        *,
        define_by_run: Callable[[Any], dict[str, Any]],
        storage: optuna.storages.BaseStorage,
        study_name: str,
        sampler: optuna.samplers.BaseSampler,
        epochs: int,
        keep_top: int | None = None,
        trial_budget: int | None = None,
        screen: Screen | None = None,
        seed: int = 0,
        objectives: Sequence[str] = OBJECTIVES,
        only_enqueued: bool = False,
    ) -> None:
        super().__init__(
            space=define_by_run,
            metric=list(objectives),
            mode=["max" if OBJECTIVE_DIRECTIONS[n] == "maximize" else "min" for n in objectives],
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )
        self._epochs = epochs
        self._keep_top = keep_top  # None: keep every trial's weights
        self._curves: dict[str, list[float]] = {}
        self._objectives = tuple(objectives)
        self._trial_budget = trial_budget
        self._screen = screen
        self._seed = seed
        self._driver = this_driver()
        self.skipped: dict[str, int] = {"infeasible": 0, "reused": 0}
        self.exhausted = False  # set when the searcher gave up on finding a spec worth training
        #: Set (by the driver's SIGINT handler) when the user interrupted the search: trials that end
        #: from now on without a complete result were cut off, not failed.
        self.interrupted = False
        self._placed: set[str] = set()  # trials whose worker is recorded
        self._asked_at: dict[str, float] = {}  # wall clock when each trial's config went to Tune
        #: Run only the study's enqueued (WAITING) trials, then say FINISHED: the confirm stage.
        self._only_enqueued = only_enqueued

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        assert self._ot_study is not None
        # One read of the study per suggestion (it may hold other drivers' trials): the budget and
        # the finished results a duplicate can reuse. Skipped samples change neither.
        trials = self._ot_study.get_trials(deepcopy=False)
        if (
            self._trial_budget is not None
            and spent_trials([record_from_trial(t) for t in trials]) >= self._trial_budget
        ):
            return Searcher.FINISHED
        if self._only_enqueued and not any(t.state == TrialState.WAITING for t in trials):
            return Searcher.FINISHED
        finished = self._finished_index(trials)
        for _ in range(MAX_SKIPPED_IN_A_ROW):
            # Ask here rather than in OptunaSearch.suggest, and say at once which driver owns the trial:
            # a driver killed after this commit leaves a trial that the next search can reconcile.
            asked = self._ot_study.ask()
            set_trial_user_attrs(asked, {ATTR_DRIVER: self._driver, ATTR_HEARTBEAT: time.time()})
            self._ot_trials[trial_id] = asked
            config = super().suggest(trial_id)
            if not isinstance(config, dict):
                return config
            ot_trial = self._ot_trials[trial_id]
            costs = self._skip(ot_trial, config, finished)
            if costs is not None:  # to be trained: its costs and budget in one commit
                set_trial_user_attrs(ot_trial, {**costs, ATTR_EPOCHS: self._epochs})
                self._asked_at[trial_id] = time.time()
                return config
            del self._ot_trials[trial_id]
        logger.warning(
            "the last %d sampled architectures needed no training (duplicates or infeasible): the space looks "
            "exhausted, so the search stops here",
            MAX_SKIPPED_IN_A_ROW,
        )
        self.exhausted = True
        return Searcher.FINISHED

    def _skip(
        self, ot_trial: Any, config: dict[str, Any], finished: Mapping[tuple[Any, ...], Any]
    ) -> dict[str, Any] | None:
        """Tell the trial without training it if it is infeasible or a duplicate (None), else return
        the attributes its screen measured (FLOPs, parameters, memory), for the caller to write with
        the others: every commit is a file sync on SQLite, several per sampled trial."""
        assert self._ot_study is not None
        screened = self._screen(config["spec"]) if self._screen is not None else None
        costs: dict[str, Any] = {}
        if screened is not None:
            cost, violation, reason = screened
            ot_trial.set_constraint(CONSTRAINT_KEY, violation)
            costs = {ATTR_FLOPS: int(cost.flops), ATTR_PARAMS: int(cost.params), ATTR_MEMORY: cost.peak_memory_mb}
            if reason is not None:
                set_trial_user_attrs(ot_trial, {**costs, ATTR_INFEASIBLE: True, ATTR_ERROR: reason, ATTR_EPOCHS: 0})
                untrained = {
                    "dice": 0.0,
                    "gflops": cost.gflops,
                    "params": float(cost.params),
                    "latency": math.inf,  # never measured
                    "memory": cost.peak_memory_mb,
                }
                values = [untrained[name] for name in self._objectives]
                self._ot_study.tell(ot_trial, values, state=TrialState.COMPLETE)
                self.skipped["infeasible"] += 1
                logger.info("trial %d refused untrained: %s", ot_trial.number, reason)
                return None
        key = (ot_trial.user_attrs.get(ATTR_SPEC_HASH), config.get("seed", self._seed), self._epochs)
        done = finished.get(key)
        if done is None:
            return costs
        copied = {name: value for name, value in done.user_attrs.items() if name in REUSED_ATTRS}
        set_trial_user_attrs(ot_trial, {**costs, **copied, ATTR_REUSED_FROM: done.number})  # its source's win
        self._ot_study.tell(ot_trial, list(done.values), state=TrialState.COMPLETE)
        self.skipped["reused"] += 1
        logger.info("trial %d reuses trial %d's result (same spec, epochs and seed)", ot_trial.number, done.number)
        return None

    def _finished_index(self, trials: list[optuna.trial.FrozenTrial]) -> dict[tuple[Any, ...], Any]:
        """Trained COMPLETE trials by (spec hash, seed, epochs): what a duplicate may reuse."""
        index: dict[tuple[Any, ...], Any] = {}
        for done in trials:
            attrs = done.user_attrs
            if done.state == TrialState.COMPLETE and not attrs.get(ATTR_INFEASIBLE) and ATTR_REUSED_FROM not in attrs:
                index.setdefault(
                    (attrs.get(ATTR_SPEC_HASH), attrs.get(ATTR_SEED, self._seed), attrs.get(ATTR_EPOCHS)), done
                )
        return index

    def close_unfinished(self, *, interrupted: bool = False) -> list[int]:
        """Record the trials Tune stopped without telling the searcher (the wall-time budget ends an
        experiment that way): PRUNED with their curves, or, when the user ``interrupted`` the search,
        FAIL ``interrupted`` and enqueued again (not charged to the budget); returns their numbers."""
        assert self._ot_study is not None
        closed = []
        for trial_id, ot_trial in list(self._ot_trials.items()):
            if trial_id in self._completed_trials:
                continue
            curve = self._curves.pop(trial_id, [])
            history = [{"epoch": i + 1, "val_dice": d} for i, d in enumerate(curve)]
            if interrupted:
                self._record_interrupted(ot_trial, history)
            else:
                set_trial_user_attrs(
                    ot_trial, {ATTR_HISTORY: history, ATTR_ERROR: "stopped when the search ended (wall-time budget)"}
                )
                self._ot_study.tell(ot_trial, None, state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            closed.append(ot_trial.number)
        return closed

    def _record_interrupted(self, ot_trial: Any, history: list[dict[str, Any]]) -> None:
        """FAIL, marked interrupted (and orphaned: not charged to the budget), its parameters enqueued again."""
        assert self._ot_study is not None
        set_trial_user_attrs(
            ot_trial,
            {
                ATTR_HISTORY: history,
                ATTR_INTERRUPTED: True,
                ATTR_ORPHANED: True,
                ATTR_ERROR: f"interrupted (SIGINT) after {len(history)} epochs; not charged to the trial budget, "
                "its architecture is enqueued again",
            },
        )
        try:
            self._ot_study.tell(ot_trial, None, state=TrialState.FAIL)
        except (RuntimeError, ValueError) as exc:  # finished meanwhile
            logger.warning("trial %d could not be recorded interrupted: %s", ot_trial.number, exc)
            return
        params = dict(self._ot_study._storage.get_trial(ot_trial._trial_id).params)
        if params:
            self._ot_study.enqueue_trial(
                params,
                user_attrs={ATTR_RETRY_OF: ot_trial.number, **carried(ot_trial.user_attrs)},
                skip_if_exists=False,
            )

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if "val_dice" in result and not result.get("complete"):
            self._curves.setdefault(trial_id, []).append(float(result["val_dice"]))
            if trial_id in self._ot_trials and trial_id not in self._placed:
                # (the heartbeat thread refreshes ATTR_HEARTBEAT; one write per epoch would cost a commit)
                self._placed.add(trial_id)
                set_trial_user_attrs(self._ot_trials[trial_id], {ATTR_WORKER: worker_of(result)})

    def _phases(self, trial_id: str, worker: Mapping[str, float]) -> dict[str, float]:
        """The worker's phase times, with the two the driver sees: ``start`` (from asking for the trial
        until its function ran: Ray placing it and starting or reusing an actor) and ``return`` (from
        its last result until here). Same-host clocks; across hosts, as far as their clocks agree."""
        phases = {name: round(float(v), 4) for name, v in worker.items() if not name.endswith("_at")}
        asked = self._asked_at.pop(trial_id, None)
        if asked is not None and "entered_at" in worker:
            phases["start"] = round(max(0.0, float(worker["entered_at"]) - asked), 4)
        if "reported_at" in worker:
            phases["return"] = round(max(0.0, time.time() - float(worker["reported_at"])), 4)
        return phases

    def on_trial_complete(self, trial_id: str, result: Mapping[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        result = dict(result or {})
        curve = self._curves.pop(trial_id, [])
        if not result.get("complete") and "val_dice" in result and int(result.get("epoch", 0)) > len(curve):
            # The result a scheduler stops a trial on reaches on_trial_complete, not on_trial_result.
            curve.append(float(result["val_dice"]))
        values: list[float] | None = None
        attrs: dict[str, Any] = {ATTR_EPOCHS: self._epochs}
        if self.interrupted and not result.get("complete"):
            # Ctrl-C reached the trial's worker too (it shares the terminal): cut off, not failed.
            self._record_interrupted(ot_trial, [{"epoch": i + 1, "val_dice": d} for i, d in enumerate(curve)])
            self._completed_trials.add(trial_id)
            return
        if error or result.get("failed"):
            state = TrialState.FAIL
            text = result.get("error") or "the trial's worker process died or raised outside the trainer"
            attrs[ATTR_ERROR] = str(text)[:4000]
        elif result.get("complete"):
            values = [float(result[name]) for name in self._objectives]
            state = TrialState.COMPLETE if all(math.isfinite(v) for v in values) else TrialState.FAIL
            attrs |= {
                ATTR_DICE: float(result["dice"]),
                ATTR_WEIGHTS: result.get("weights_path"),
                ATTR_BEST_EPOCH: result.get("best_epoch"),
                ATTR_SECONDS: result.get("train_seconds"),
            }
            if result.get("collapsed"):
                attrs[ATTR_COLLAPSED] = str(result["collapsed"])
            if result.get("val_metrics_json"):
                attrs[ATTR_METRICS] = json.loads(result["val_metrics_json"])
            if result.get("test_metrics_json") and json.loads(result["test_metrics_json"]):
                attrs[ATTR_TEST_METRICS] = json.loads(result["test_metrics_json"])
            for attr, key in ((ATTR_LATENCY, "latency_ms"), (ATTR_MEASURED_MEMORY, "measured_memory_mb")):
                if key in result:
                    attrs[attr] = float(result[key])
            if result.get("phases_json"):
                attrs[ATTR_PHASES] = self._phases(trial_id, json.loads(result["phases_json"]))
            curve = list(result.get("val_dice_history", curve))
            losses = list(result.get("loss_history", []))
            attrs[ATTR_HISTORY] = [
                {"epoch": i + 1, "val_dice": d, **({"loss": losses[i]} if i < len(losses) else {})}
                for i, d in enumerate(curve)
            ]
        else:
            state = TrialState.PRUNED
            attrs[ATTR_HISTORY] = [{"epoch": i + 1, "val_dice": d} for i, d in enumerate(curve)]
        for attr, key in ((ATTR_FLOPS, "flops"), (ATTR_PARAMS, "params")):
            if key in result:
                attrs[attr] = int(result[key])
        if "peak_memory_mb" in result:
            attrs[ATTR_MEMORY] = float(result["peak_memory_mb"])
        set_trial_user_attrs(ot_trial, attrs)
        assert self._ot_study is not None  # created in __init__ because the space is given
        try:
            self._ot_study.tell(ot_trial, values if state == TrialState.COMPLETE else None, state=state)
        except (RuntimeError, ValueError) as exc:  # finished meanwhile, e.g. reconciled as an orphan
            logger.warning("trial %d could not be recorded %s: %s", ot_trial.number, state.name, exc)
        self._completed_trials.add(trial_id)
        if self._keep_top is not None and state == TrialState.COMPLETE:
            pruned = prune_weights(self._ot_study, keep_top=self._keep_top)
            if pruned:
                logger.info("deleted the weights of dominated trials %s (keep policy)", pruned)
