"""Orchestration: the search loop over Ray Tune and Optuna, and the ``nas`` command line."""

from __future__ import annotations

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
from nas._search import SearchOutcome, make_sampler, run_search
from nas._searcher import ATTR_WORKER, MAX_SKIPPED_IN_A_ROW, DefineByRun, StudySearch
from nas._studyfile import StudyFile, parse_override, preset_names, search_config
from nas._trainable import run_trial, weights_path

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
    "this_driver",
    "unique_study_name",
    "weights_path",
]
