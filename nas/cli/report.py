"""``nas report STUDY -o FILE.html``: the dashboard's figures as one offline HTML file."""

from __future__ import annotations

import argparse
from pathlib import Path

from dashboards import report_html
from nas.cli._common import add_storage
from studies import (
    StudyReader,
    hv_reference,
    load_study,
    open_storage,
    pareto_records,
    parse_storage_url,
    redact,
    sqlite_path,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write a self-contained HTML report of a study")
    p.add_argument("study", help="study name")
    p.add_argument("-o", "--output", type=Path, required=True, help="HTML file to write")
    add_storage(p)
    p.set_defaults(handler=run)


def portable_storage(url: str) -> str:
    """The storage as the report's export commands name it: a relative SQLite file made absolute,
    so that a command copied from the report works from any folder; any password hidden."""
    parsed = parse_storage_url(url)
    path = sqlite_path(url)
    if path is not None and not path.is_absolute():
        parsed = parsed.set(database=str(path.resolve()))
    return redact(parsed)


def run(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage, create=False)
    reader = StudyReader(storage)
    records = reader.records(args.study)  # an unknown study fails here, before anything is written
    reference = hv_reference(load_study(storage, args.study).user_attrs)
    if not args.output.parent.resolve().is_dir():
        raise FileNotFoundError(f"-o {args.output}: directory {args.output.parent.resolve()} does not exist")
    page = report_html(args.study, records, storage=portable_storage(args.storage), reference=reference)
    args.output.write_text(page, encoding="utf-8")
    done = sum(r.state == "COMPLETE" for r in records)
    print(f"report: {args.output.resolve()} ({done} complete trials, {len(pareto_records(records))} on the front)")
    return 0
