"""``nas status STUDY``: trial counts and the Pareto table."""

from __future__ import annotations

import argparse

from nas.cli._common import add_storage
from nas.cli._tables import counts_line, pareto_table
from studies import load_study, open_storage, trial_records


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help="trial counts and the Pareto table of a study")
    p.add_argument("study", help="study name")
    add_storage(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    study = load_study(open_storage(args.storage, create=False), args.study)
    records = trial_records(study)
    print(f"study {study.study_name}: {counts_line(records)}")
    print(pareto_table(records))
    return 0
