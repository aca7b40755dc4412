"""``nas retrain EXPORT_DIR --epochs N``: the full-budget retraining of an exported architecture, from
scratch, on the study's data, with a test-set evaluation: the step that follows every search."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas._config import data_config
from nas.cli.train import add_training_options, fit_and_print, load_spec, recipe_of, train_config
from studies import ARCH_FILE, METRICS_FILE, ExportError
from trainers import TTA_MODES, DataError, data_config_from_dict


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("retrain", help="retrain an exported architecture at full budget, with a test set")
    p.add_argument("export", type=Path, help="a directory written by nas export")
    p.add_argument("-o", "--out", type=Path, default=None, help="output directory (default EXPORT/retrained)")
    add_training_options(p, epochs=50, data_default="study", tta_default="study", recipe_default="study")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    export = args.export
    if not (export / ARCH_FILE).is_file():
        raise ExportError(f"{export}: no {ARCH_FILE} here; pass a directory written by nas export")
    spec = load_spec(export / ARCH_FILE)
    if args.tta == "study":
        args.tta = _recorded_tta(export)
    if args.data == "study":
        recorded = _recorded_data(export)
        if recorded.get("kind", "synthetic") == "synthetic":
            recorded = {**recorded, "n_test": max(int(recorded.get("n_test", 0)), 32)}  # a held-out test set
        data = data_config_from_dict(recorded)
    else:
        data = data_config(args.data, n_test=32, seed=args.seed)
    out = args.out or export / "retrained"
    recipe = (
        recipe_of(_read_metrics(export, "pass the recipe options").get("train"))
        if (export / METRICS_FILE).is_file()
        else None
    )
    used = train_config(args, recipe)
    print(
        f"retraining {spec.short_label()} for {args.epochs} epochs on {data.to_dict().get('kind')} data "
        f"({'the study' if recipe is not None else 'the default'} recipe: loss {used.loss}, {used.optimizer} "
        f"lr {used.lr:g}, {used.schedule} schedule, batch {used.batch_size}"
        + (f", at most {args.wall_time:.0f} s" if args.wall_time else "")
        + ")",
        flush=True,
    )
    fit_and_print(spec, data, args, out, recipe)
    return 0


def _read_metrics(export: Path, hint: str) -> dict:
    """The export's ``metrics.json`` as a JSON object, or an ExportError naming the file."""
    path = export / METRICS_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path}: not found; {hint}") from None
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or not UTF-8
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise ExportError(f"{path}: cannot be read ({reason}); {hint}") from None
    if not isinstance(recorded, dict):
        raise ExportError(
            f"{path}: holds a JSON {type(recorded).__name__}, expected the object nas export writes; {hint}"
        )
    return recorded


def _recorded_tta(export: Path) -> str:
    """The test-time augmentation the study evaluated with (``none`` when its export records none)."""
    if not (export / METRICS_FILE).is_file():
        return "none"
    train = _read_metrics(export, "pass --tta").get("train")
    tta = train.get("tta", "none") if isinstance(train, dict) else "none"
    return tta if tta in TTA_MODES else "none"


def _recorded_data(export: Path) -> dict:
    path = export / METRICS_FILE
    recorded = _read_metrics(export, "pass --data").get("data")
    if not isinstance(recorded, dict):
        raise DataError(f"{path}: records no data config; pass --data")
    return recorded
