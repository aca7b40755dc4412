"""A study's trials as a pandas DataFrame, one row per trial, for notebooks and spreadsheets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a frame is built: the dashboard reads studies without pandas (0.5 s)
    import pandas as pd

from studies._records import TrialRecord, pareto_records

#: The leading columns, in order; spec and metric columns follow.
BASE_COLUMNS = (
    "number",
    "state",
    "stage",
    "pareto",
    "dice",
    "gflops",
    "params",
    "latency_ms",
    "peak_memory_mb",
    "measured_memory_mb",
    "epochs",
    "best_epoch",
    "train_seconds",
    "duration_s",
    "infeasible",
    "seed",
    "reused_from",
    "orphaned",
    "collapsed",
    "architecture",
    "spec_hash",
    "error",
)


def _text(value: Any) -> Any:
    """Lists become compact text (``16-32-64``) so that every cell is a scalar in CSV and JSON alike."""
    if isinstance(value, list | tuple):
        return "-".join(str(v) for v in value)
    return value


def flatten_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A spec's fields as flat columns: ``spec.backbone``, ``spec.channels`` (``16-32-64``),
    ``attention.block``, ``attention.<option>`` and ``placement.<site>`` (the levels, ``0-1``)."""
    if not spec:
        return {}
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "attention" and isinstance(value, Mapping):
            out["attention.block"] = value.get("block", "none")
            for name, option in sorted(dict(value.get("options", {})).items()):
                out[f"attention.{name}"] = _text(option)
            for site, levels in sorted(dict(value.get("placement", {})).items()):
                out[f"placement.{site}"] = _text(levels)
        elif key == "extra_attention" and isinstance(value, list | tuple):
            for index, extra in enumerate(value):  # a second mechanism at other sites: extra.*, extra2.*, ...
                tag = "extra" if index == 0 else f"extra{index + 1}"
                out[f"{tag}.block"] = extra.get("block", "none")
                for name, option in sorted(dict(extra.get("options", {})).items()):
                    out[f"{tag}.{name}"] = _text(option)
                for site, levels in sorted(dict(extra.get("placement", {})).items()):
                    out[f"{tag}_placement.{site}"] = _text(levels)
        elif key != "schema_version":
            out[f"spec.{key}"] = _text(value)
    return out


def _metrics(prefix: str, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    if not metrics:
        return {}
    out = {f"{prefix}.{name}": value for name, value in dict(metrics.get("mean", {})).items()}
    for cls, values in dict(metrics.get("per_class", {})).items():
        out |= {f"{prefix}.{name}.class{cls}": value for name, value in dict(values).items()}
    return out


def records_frame(records: Sequence[TrialRecord]) -> pd.DataFrame:
    """One row per trial: state, whether it is on the Pareto set, objectives and costs, the spec's
    fields flattened into columns (see ``flatten_spec``) and every stored validation (``val.*``) and
    test (``test.*``) metric, mean and per class."""
    front = {r.number for r in pareto_records(records)}
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "number": r.number,
            "state": r.state,
            "stage": r.stage,
            "pareto": r.number in front,
            "dice": r.dice,
            "gflops": r.gflops,
            "params": r.params,
            "latency_ms": r.latency_ms,
            "peak_memory_mb": r.peak_memory_mb,
            "measured_memory_mb": r.measured_memory_mb,
            "epochs": r.epochs,
            "best_epoch": r.best_epoch,
            "train_seconds": r.train_seconds,
            "duration_s": r.duration_s,
            "infeasible": r.infeasible,
            "seed": r.seed,
            "reused_from": r.reused_from,
            "orphaned": r.orphaned,
            "collapsed": r.collapsed,
            "architecture": r.label,
            "spec_hash": r.spec_hash,
            "error": r.error.splitlines()[0] if r.error else None,
        }
        row |= flatten_spec(r.spec)
        row |= _metrics("val", r.metrics)
        row |= _metrics("test", r.test_metrics)
        rows.append(row)
    import pandas as pd

    frame = pd.DataFrame(rows, columns=None if rows else list(BASE_COLUMNS))
    return frame.sort_values("number", ignore_index=True) if rows else frame
