"""Where results live: storage, study creation, trial records, Pareto queries and export."""

from __future__ import annotations

from studies._errors import ExportError, StorageError, StudyError, StudyExistsError, StudyNotFoundError
from studies._export import ARCH_FILE, CARD_FILE, METRICS_FILE, WEIGHTS_FILE, export_trial
from studies._pareto import hypervolume_2d, pareto_mask
from studies._records import (
    ATTR_BEST_EPOCH,
    ATTR_EPOCHS,
    ATTR_ERROR,
    ATTR_FLOPS,
    ATTR_HISTORY,
    ATTR_INFEASIBLE,
    ATTR_LABEL,
    ATTR_MEMORY,
    ATTR_PARAMS,
    ATTR_SECONDS,
    ATTR_SPEC,
    ATTR_SPEC_HASH,
    ATTR_WEIGHTS,
    TrialRecord,
    complete_records,
    pareto_records,
    record_from_trial,
    state_counts,
    trial_records,
)
from studies._storage import DEFAULT_STORAGE, open_storage, parse_storage_url, redact, sqlite_path
from studies._study import DIRECTIONS, OBJECTIVES, create_study, load_study, study_names

__all__ = [
    "ARCH_FILE",
    "ATTR_BEST_EPOCH",
    "ATTR_EPOCHS",
    "ATTR_ERROR",
    "ATTR_FLOPS",
    "ATTR_HISTORY",
    "ATTR_INFEASIBLE",
    "ATTR_LABEL",
    "ATTR_MEMORY",
    "ATTR_PARAMS",
    "ATTR_SECONDS",
    "ATTR_SPEC",
    "ATTR_SPEC_HASH",
    "ATTR_WEIGHTS",
    "CARD_FILE",
    "DEFAULT_STORAGE",
    "DIRECTIONS",
    "METRICS_FILE",
    "OBJECTIVES",
    "WEIGHTS_FILE",
    "ExportError",
    "StorageError",
    "StudyError",
    "StudyExistsError",
    "StudyNotFoundError",
    "TrialRecord",
    "complete_records",
    "create_study",
    "export_trial",
    "hypervolume_2d",
    "load_study",
    "open_storage",
    "pareto_mask",
    "pareto_records",
    "parse_storage_url",
    "record_from_trial",
    "redact",
    "sqlite_path",
    "state_counts",
    "study_names",
    "trial_records",
]
