"""Orchestration: the search loop over Ray Tune and Optuna, and the ``nas`` command line."""

from __future__ import annotations

from nas._config import DEMO_SPACE, SearchConfig, unique_study_name
from nas._constraints import Constraints, Screen
from nas._errors import ConfigError
from nas._search import SearchOutcome, run_search
from nas._searcher import DefineByRun, StudySearch
from nas._trainable import run_trial, weights_path

__all__ = [
    "DEMO_SPACE",
    "ConfigError",
    "Constraints",
    "DefineByRun",
    "Screen",
    "SearchConfig",
    "SearchOutcome",
    "StudySearch",
    "run_search",
    "run_trial",
    "unique_study_name",
    "weights_path",
]
