"""``nas export STUDY --trial N``: architecture, weights and model card of one trial."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli._common import add_storage, non_negative_int
from studies import export_trial, load_study, open_storage


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a trial's arch.json, weights and model card")
    p.add_argument("study", help="study name")
    p.add_argument("--trial", type=non_negative_int, required=True, help="trial number (see nas status)")
    p.add_argument("-o", "--out", type=Path, default=None, help="output directory (default ./export-STUDY-tN)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    add_storage(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    study = load_study(open_storage(args.storage, create=False), args.study)
    out = args.out or Path(f"export-{args.study}-t{args.trial}")
    target = export_trial(study, args.trial, out, overwrite=args.overwrite)
    print(f"exported trial {args.trial} of {args.study} to {target.resolve()}")
    for item in sorted(target.iterdir()):
        print(f"  {item.name}")
    return 0
