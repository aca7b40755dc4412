"""``nas export STUDY --trial N | --knee | --max-gflops X [--nnunet]``: architecture, weights,
TorchScript, ``torch.export`` and ONNX programs, a reproducibility manifest, a MONAI bundle, a model
card and (``--nnunet``) an nnU-Net v2 trainer of one trial."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli._common import add_storage, non_negative_int, positive_float
from studies import best_under_budget, export_trial, knee_record, load_study, open_storage, trial_records


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trial's arch.json, weights, TorchScript/torch.export/ONNX programs, MONAI bundle and model card",
    )
    p.add_argument("study", help="study name")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=non_negative_int, help="trial number (see nas status)")
    which.add_argument(
        "--knee",
        action="store_true",
        help="the knee of the Dice/GFLOPs Pareto front (farthest from the line between its ends, log GFLOPs)",
    )
    which.add_argument(
        "--max-gflops", type=positive_float, metavar="X", help="the best-Dice COMPLETE trial costing at most X GFLOPs"
    )
    p.add_argument("-o", "--out", type=Path, default=None, help="output directory (default ./export-STUDY-tN)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument(
        "--nnunet",
        action="store_true",
        help="also write an nnU-Net v2 trainer class (nnunet/nnUNetTrainer_STUDY_N.py) that trains the architecture",
    )
    add_storage(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    study = load_study(open_storage(args.storage, create=False), args.study)
    number = args.trial
    if number is None:
        records = trial_records(study)
        chosen = knee_record(records) if args.knee else best_under_budget(records, args.max_gflops)
        number = chosen.number
        how = "the knee of the front" if args.knee else f"the best Dice within {args.max_gflops:g} GFLOPs"
        print(f"{how}: trial {number}, Dice {chosen.dice:.4f}, {chosen.gflops:.4g} GFLOPs, {chosen.label}")
    out = args.out or Path(f"export-{args.study}-t{number}")
    target = export_trial(study, number, out, overwrite=args.overwrite, nnunet=args.nnunet)
    print(f"exported trial {number} of {args.study} to {target.resolve()}")
    for item in sorted(target.iterdir()):
        print(f"  {item.name}")
    return 0
