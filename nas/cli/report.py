"""``nas report STUDY -o FILE.html``: the Pareto figure as one offline HTML file."""

from __future__ import annotations

import argparse
from pathlib import Path

from dashboards import pareto_plot_data, report_html
from nas.cli._common import add_storage
from studies import load_study, open_storage, trial_records


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write a self-contained HTML report of a study")
    p.add_argument("study", help="study name")
    p.add_argument("-o", "--output", type=Path, required=True, help="HTML file to write")
    add_storage(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    study = load_study(open_storage(args.storage, create=False), args.study)
    if not args.output.parent.resolve().is_dir():
        raise FileNotFoundError(f"-o {args.output}: directory {args.output.parent.resolve()} does not exist")
    data = pareto_plot_data(f"Study {study.study_name}", trial_records(study))
    args.output.write_text(report_html(data))
    print(f"report: {args.output.resolve()} ({len(data.points)} complete trials, {len(data.front)} on the front)")
    return 0
