"""``nas status STUDY``: trial counts, hypervolume and the Pareto table, or every trial as CSV/JSON."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from dashboards import study_summary
from nas._resume import orphaned_running
from nas.cli._common import add_storage
from nas.cli._tables import counts_line, pareto_table, verdict_table
from studies import TrialRecord, hv_reference, load_study, open_storage, records_frame, trial_records

FORMATS = ("table", "csv", "json")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="trial counts, hypervolume and the Pareto table of a study (or every trial as CSV/JSON)",
    )
    p.add_argument("study", help="study name")
    p.add_argument(
        "--format",
        default="table",
        choices=FORMATS,
        help="table (default): counts, hypervolume, Pareto set; csv/json: one row per trial, the spec's "
        "fields flattened into columns (pandas.read_csv / read_json read it back)",
    )
    add_storage(p)
    p.set_defaults(handler=run)


def _with_dead_drivers(study: Any, records: list[TrialRecord]) -> tuple[list[TrialRecord], list[int]]:
    """Records of RUNNING trials whose driver is gone shown as ORPHANED (read only: nothing is written)."""
    dead = {t.number for t in orphaned_running(study)}
    shown = [dataclasses.replace(r, state="ORPHANED", orphaned=True) if r.number in dead else r for r in records]
    return shown, sorted(dead)


def run(args: argparse.Namespace) -> int:
    study = load_study(open_storage(args.storage, create=False), args.study)
    records, orphans = _with_dead_drivers(study, trial_records(study))
    if args.format == "csv":
        records_frame(records).to_csv(sys.stdout, index=False)
        return 0
    if args.format == "json":
        sys.stdout.write(records_frame(records).to_json(orient="records", indent=1) + "\n")
        return 0
    summary = study_summary(study.study_name, records, hv_reference(study.user_attrs))
    print(f"study {study.study_name}: {counts_line(records)}")
    if orphans:
        print(
            f"note: trials {orphans} are recorded RUNNING but the driver that ran them has stopped "
            "(ORPHANED); the next search on this study marks them FAIL and runs them again"
        )
    if summary.pareto_size:
        dice_ref, gflops_ref = summary.reference[1], summary.reference[0]
        print(
            f"hypervolume {summary.hypervolume:.4f} (Dice x GFLOPs dominated above Dice {dice_ref:g}, "
            f"below {gflops_ref:.4g} GFLOPs)"
        )
    print(pareto_table(records))
    shown = verdict_table(records)
    if shown:
        print(shown)
    return 0
