"""Creating and loading the multi-objective study that records a search."""

from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import optuna

from studies._errors import StudyExistsError, StudyNotFoundError

logger = logging.getLogger(__name__)

#: The objectives of a search, in the order Optuna stores their values.
OBJECTIVES: tuple[str, ...] = ("dice", "gflops")
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize")


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of all studies in ``storage``, sorted."""
    return sorted(s.study_name for s in storage.get_all_studies())


def create_study(
    storage: optuna.storages.BaseStorage, name: str, *, attrs: Mapping[str, Any] | None = None
) -> optuna.Study:
    """Create a new search study: maximise ``dice``, minimise ``gflops``, with metric names set.

    ``attrs`` (JSON-able) are stored as study user attributes: the data, training and space
    configuration every trial of the study shares.
    """
    if name in study_names(storage):
        raise StudyExistsError(f"study {name!r} already exists in this storage; choose another name")
    study = optuna.create_study(storage=storage, study_name=name, directions=[*DIRECTIONS])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(OBJECTIVES))
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
