"""Creating and loading the multi-objective study that records a search."""

from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import optuna

from studies._errors import StudyError, StudyExistsError, StudyNotFoundError

logger = logging.getLogger(__name__)

#: The default objectives of a search, in the order Optuna stores their values.
OBJECTIVES: tuple[str, ...] = ("dice", "gflops")
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize")
#: Every objective a study may optimise: validation Dice; GFLOPs and parameters (counted); forward
#: latency at batch 1 and peak training memory (measured on the trial's device).
OBJECTIVE_DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "dice": "maximize",
    "gflops": "minimize",
    "params": "minimize",
    "latency": "minimize",
    "memory": "minimize",
}


def check_objectives(objectives: Sequence[str], field: str = "objectives") -> tuple[str, ...]:
    """``objectives`` if they are 2 or 3 distinct known names, else a ``StudyError`` naming ``field``."""
    names = tuple(objectives)
    unknown = [n for n in names if n not in OBJECTIVE_DIRECTIONS]
    if unknown:
        raise StudyError(
            f"{field}: {unknown[0]!r} is not an objective; expected 2 or 3 of {', '.join(OBJECTIVE_DIRECTIONS)}"
        )
    if not 2 <= len(names) <= 3 or len(set(names)) != len(names):
        raise StudyError(
            f"{field}: {list(names)!r} is not valid; expected 2 or 3 distinct of {', '.join(OBJECTIVE_DIRECTIONS)}"
        )
    return names


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of all studies in ``storage``, sorted."""
    return sorted(s.study_name for s in storage.get_all_studies())


def create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    attrs: Mapping[str, Any] | None = None,
    objectives: Sequence[str] = OBJECTIVES,
) -> optuna.Study:
    """Create a new search study over ``objectives`` (default: maximise ``dice``, minimise
    ``gflops``), their names recorded as Optuna's metric names.

    ``attrs`` (JSON-able) are stored as study user attributes: the data, training and space
    configuration every trial of the study shares.
    """
    if name in study_names(storage):
        raise StudyExistsError(f"study {name!r} already exists in this storage; choose another name")
    names = check_objectives(objectives)
    study = optuna.create_study(storage=storage, study_name=name, directions=[OBJECTIVE_DIRECTIONS[n] for n in names])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))
    for key, value in (attrs or {}).items():
        study.set_user_attr(key, value)
    return study


def load_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Load an existing study, or raise ``StudyNotFoundError`` listing the studies that exist."""
    names = study_names(storage)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = ", ".join(names[-10:]) if names else "none"
        raise StudyNotFoundError(f"study {name!r} not found{hint}; studies in this storage: {listing}")
    return optuna.load_study(study_name=name, storage=storage)


def study_objectives(study: optuna.Study) -> tuple[str, ...]:
    """The objective names of ``study`` (studies made before they were recorded: the defaults)."""
    names = study.metric_names
    return tuple(names) if names else OBJECTIVES


#: Study user attribute: the hypervolume reference point fixed when the study was created,
#: ``{"dice": 0.0, "gflops": G, "source": "..."}``.
ATTR_HV_REFERENCE = "hv_reference"


def hv_reference(attrs: Mapping[str, Any]) -> tuple[float, float] | None:
    """The fixed (GFLOPs, Dice) hypervolume reference a study recorded (``attrs``: its user
    attributes); None for a study made before references were fixed (2026-12)."""
    ref = attrs.get(ATTR_HV_REFERENCE)
    if not isinstance(ref, Mapping) or "gflops" not in ref:
        return None
    return float(ref["gflops"]), float(ref.get("dice", 0.0))
