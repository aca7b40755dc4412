"""Orchestration: the search loop over Ray Tune and Optuna, and the ``nas`` command line."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported on first use (``__getattr__``): the CLI's light commands need no Ray or torch
    from nas._config import DEMO_SPACE, SearchConfig, unique_study_name
    from nas._constraints import CONSTRAINT_KEY, Constraints, Screen
    from nas._errors import ConfigError
    from nas._resume import (
        ATTR_DRIVER,
        ATTR_HEARTBEAT,
        ATTR_RETRY_OF,
        STALE_AFTER_S,
        Heartbeat,
        Reconciled,
        reconcile_orphans,
        this_driver,
    )
    from nas._search import SearchOutcome, make_sampler, run_search, start_local_ray
    from nas._searcher import ATTR_WORKER, MAX_SKIPPED_IN_A_ROW, DefineByRun, StudySearch
    from nas._studyfile import StudyFile, parse_override, preset_names, search_config
    from nas._trainable import run_trial, weights_path

#: Where each public name lives.
_HOME = {
    "DEMO_SPACE": "nas._config",
    "SearchConfig": "nas._config",
    "unique_study_name": "nas._config",
    "CONSTRAINT_KEY": "nas._constraints",
    "Constraints": "nas._constraints",
    "Screen": "nas._constraints",
    "ConfigError": "nas._errors",
    "ATTR_DRIVER": "nas._resume",
    "ATTR_HEARTBEAT": "nas._resume",
    "ATTR_RETRY_OF": "nas._resume",
    "STALE_AFTER_S": "nas._resume",
    "Heartbeat": "nas._resume",
    "Reconciled": "nas._resume",
    "reconcile_orphans": "nas._resume",
    "this_driver": "nas._resume",
    "SearchOutcome": "nas._search",
    "make_sampler": "nas._search",
    "run_search": "nas._search",
    "start_local_ray": "nas._search",
    "ATTR_WORKER": "nas._searcher",
    "MAX_SKIPPED_IN_A_ROW": "nas._searcher",
    "DefineByRun": "nas._searcher",
    "StudySearch": "nas._searcher",
    "StudyFile": "nas._studyfile",
    "parse_override": "nas._studyfile",
    "preset_names": "nas._studyfile",
    "search_config": "nas._studyfile",
    "run_trial": "nas._trainable",
    "weights_path": "nas._trainable",
}


def __getattr__(name: str) -> Any:
    """The public names, imported from their module on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "ATTR_DRIVER",
    "ATTR_HEARTBEAT",
    "ATTR_RETRY_OF",
    "ATTR_WORKER",
    "CONSTRAINT_KEY",
    "DEMO_SPACE",
    "MAX_SKIPPED_IN_A_ROW",
    "STALE_AFTER_S",
    "ConfigError",
    "Constraints",
    "DefineByRun",
    "Heartbeat",
    "Reconciled",
    "Screen",
    "SearchConfig",
    "SearchOutcome",
    "StudyFile",
    "StudySearch",
    "make_sampler",
    "parse_override",
    "preset_names",
    "reconcile_orphans",
    "run_search",
    "run_trial",
    "search_config",
    "start_local_ray",
    "this_driver",
    "unique_study_name",
    "weights_path",
]
