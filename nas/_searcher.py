"""Our Optuna searcher for Ray Tune: stock sampling, honest trial states, full trial records."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from search_spaces import ArchSpec, SampleContext, SearchSpace, sample_spec
from studies import (
    ATTR_BEST_EPOCH,
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
    ATTR_PARAMS,
    ATTR_SECONDS,
    ATTR_SPEC,
    ATTR_SPEC_HASH,
    ATTR_TEST_METRICS,
    ATTR_WEIGHTS,
    DIRECTIONS,
    OBJECTIVES,
    prune_weights,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DefineByRun:
    """The define-by-run function handed to Optuna: sample a spec, record it on the trial.

    A picklable object rather than a closure, because Ray checkpoints the searcher with pickle.
    """

    space: SearchSpace
    context: SampleContext

    def __call__(self, trial: Any) -> dict[str, Any]:
        spec: ArchSpec = sample_spec(trial, self.space, self.context)
        trial.set_user_attr(ATTR_SPEC, spec.to_dict())
        trial.set_user_attr(ATTR_SPEC_HASH, spec.spec_hash())
        trial.set_user_attr(ATTR_LABEL, spec.short_label())
        return {"spec": spec.to_dict(), "trial_number": trial.number}


class StudySearch(OptunaSearch):
    """Ray's ``OptunaSearch`` with the completion semantics a search record needs.

    The stock adapter tells Optuna COMPLETE whenever the last result holds the metrics, so a trial
    stopped early lands on the Pareto front with partial-training values. Here a trial is:

    - COMPLETE only if its last result says ``complete`` (the full budget ran), with the values
      (dice, gflops) and its cost, weights and learning curve as user attributes;
    - FAIL if it reported ``failed`` or Ray reported an error, with the error text kept, or if it
      was refused untrained as ``infeasible`` (over the memory budget), marked so;
    - PRUNED otherwise (stopped before the end), its learning curve kept.
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
    ) -> None:
        super().__init__(
            space=define_by_run,
            metric=list(OBJECTIVES),
            mode=["max" if d == "maximize" else "min" for d in DIRECTIONS],
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )
        self._epochs = epochs
        self._keep_top = keep_top  # None: keep every trial's weights
        self._curves: dict[str, list[float]] = {}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if "val_dice" in result and not result.get("complete"):
            self._curves.setdefault(trial_id, []).append(float(result["val_dice"]))

    def on_trial_complete(self, trial_id: str, result: Mapping[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        result = dict(result or {})
        curve = self._curves.pop(trial_id, [])
        values: list[float] | None = None
        if result.get("infeasible"):
            state = TrialState.FAIL
            ot_trial.set_user_attr(ATTR_ERROR, str(result.get("error", "infeasible")))
            ot_trial.set_user_attr(ATTR_INFEASIBLE, True)
        elif error or result.get("failed"):
            state = TrialState.FAIL
            text = result.get("error") or "the trial's worker process died or raised outside the trainer"
            ot_trial.set_user_attr(ATTR_ERROR, str(text)[:4000])
        elif result.get("complete"):
            values = [float(result[name]) for name in OBJECTIVES]
            state = TrialState.COMPLETE if all(math.isfinite(v) for v in values) else TrialState.FAIL
            ot_trial.set_user_attr(ATTR_WEIGHTS, result.get("weights_path"))
            ot_trial.set_user_attr(ATTR_BEST_EPOCH, result.get("best_epoch"))
            ot_trial.set_user_attr(ATTR_SECONDS, result.get("train_seconds"))
            if result.get("val_metrics_json"):
                ot_trial.set_user_attr(ATTR_METRICS, json.loads(result["val_metrics_json"]))
            if result.get("test_metrics_json") and json.loads(result["test_metrics_json"]):
                ot_trial.set_user_attr(ATTR_TEST_METRICS, json.loads(result["test_metrics_json"]))
            for attr, key in ((ATTR_LATENCY, "latency_ms"), (ATTR_MEASURED_MEMORY, "measured_memory_mb")):
                if key in result:
                    ot_trial.set_user_attr(attr, float(result[key]))
            curve = list(result.get("val_dice_history", curve))
            losses = list(result.get("loss_history", []))
            history = [
                {"epoch": i + 1, "val_dice": d, **({"loss": losses[i]} if i < len(losses) else {})}
                for i, d in enumerate(curve)
            ]
            ot_trial.set_user_attr(ATTR_HISTORY, history)
        else:
            state = TrialState.PRUNED
            ot_trial.set_user_attr(ATTR_HISTORY, [{"epoch": i + 1, "val_dice": d} for i, d in enumerate(curve)])
        for attr, key in ((ATTR_FLOPS, "flops"), (ATTR_PARAMS, "params")):
            if key in result:
                ot_trial.set_user_attr(attr, int(result[key]))
        if "peak_memory_mb" in result:
            ot_trial.set_user_attr(ATTR_MEMORY, float(result["peak_memory_mb"]))
        ot_trial.set_user_attr(ATTR_EPOCHS, self._epochs)
        assert self._ot_study is not None  # created in __init__ because the space is given
        self._ot_study.tell(ot_trial, values if state == TrialState.COMPLETE else None, state=state)
        self._completed_trials.add(trial_id)
        if self._keep_top is not None and state == TrialState.COMPLETE:
            pruned = prune_weights(self._ot_study, keep_top=self._keep_top)
            if pruned:
                logger.info("deleted the weights of dominated trials %s (keep policy)", pruned)
