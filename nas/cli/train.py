"""``nas train SPEC.json``: train one architecture (a baseline, an exported or hand-written spec)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

from nas._config import data_config
from nas._fit import AUTO, fit_architecture, init_map_choices
from nas.cli._common import env_default, non_negative_int, positive_float, positive_int
from search_spaces import ArchSpec, SpecError
from trainers import LOSSES, OPTIMIZERS, SCHEDULES, TTA_MODES, TrainConfig


def duration(text: str) -> float:
    """Seconds from ``3600``, ``90s``, ``30m`` or ``2h`` (argparse type)."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; expected seconds > 0 or a duration such as 90m or 2h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")

#: The recipe options whose default, with ``recipe_default="study"``, is what the study trained with.
RECIPE_OPTIONS = ("batch_size", "lr", "loss", "optimizer", "schedule", "grad_clip")


def add_training_options(
    p: argparse.ArgumentParser,
    *,
    epochs: int,
    data_default: str | None = None,
    tta_default: str | None = None,
    recipe_default: str | None = None,
) -> None:
    """The options ``nas train`` and ``nas retrain`` share (``"study"`` defaults: what the study used;
    with ``recipe_default="study"`` the recipe options left out are the study's, see ``train_config``)."""
    p.add_argument(
        "--data",
        default=data_default or env_default("data", "synthetic"),
        help="synthetic or synthetic3d (built in, with a 32-image test set) or a JSON file of data fields (see README)"
        + ("; default: the data the study searched on" if data_default else ""),
    )
    recipe = TrainConfig()  # one set of defaults: what a search trains with
    study = recipe_default == "study"  # None: the study's value, filled in by train_config
    hint = "; default: what the study trained with" if study else ""
    p.add_argument("--epochs", type=positive_int, default=epochs)
    p.add_argument("--batch-size", type=positive_int, default=None if study else recipe.batch_size, help=hint[2:])
    p.add_argument("--lr", type=positive_float, default=None if study else recipe.lr, help=hint[2:])
    p.add_argument("--loss", default=None if study else recipe.loss, choices=tuple(LOSSES), help=hint[2:])
    p.add_argument("--optimizer", default=None if study else recipe.optimizer, choices=OPTIMIZERS, help=hint[2:])
    p.add_argument("--schedule", default=None if study else recipe.schedule, choices=SCHEDULES, help=hint[2:])
    p.add_argument("--grad-clip", type=positive_float, default=None, help=hint[2:])
    p.add_argument(
        "--wall-time",
        type=duration,
        default=None,
        help="stop after the epoch during which this much training time has passed, e.g. 3600, 90m or 2h "
        "(the best epoch's weights are kept)",
    )
    p.add_argument(
        "--tta",
        default=tta_default or recipe.tta,
        choices=(*TTA_MODES, *((tta_default,) if tta_default else ())),
        help="test-time augmentation of validation and test predictions: flips averages the probabilities over "
        "every combination of flipped spatial axes (AF-Net; 4 passes in 2D, 8 in 3D)"
        + ("; default: what the study evaluated with" if tta_default else ""),
    )
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--init", type=Path, default=None, help="a state dict to start from (matched by name and shape)")
    p.add_argument("--init-prefix", default="", help="only initialise tensors whose names start with this")
    p.add_argument(
        "--init-map",
        default=AUTO,
        choices=init_map_choices(),
        help="how the file's tensor names become ours: torchvision-resnet (an ImageNet ResNet onto the resnet34 "
        "encoder), none (as they are), or auto (recognised from the keys; default)",
    )
    p.add_argument(
        "--freeze-epochs", type=non_negative_int, default=0, help="keep the initialised tensors frozen this long"
    )


def train_config(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The options given, over ``base`` (the study's recipe for ``nas retrain``; the defaults otherwise)."""
    given = {name: getattr(args, name) for name in RECIPE_OPTIONS if getattr(args, name) is not None}
    return dataclasses.replace(
        base or TrainConfig(),
        **given,
        epochs=args.epochs,
        seed=args.seed,
        tta=args.tta,
        time_budget_s=args.wall_time,
    )


def recipe_of(recorded: Any) -> TrainConfig:
    """The training recipe a study recorded (its ``train`` attributes), as a ``TrainConfig``: fields
    this version does not know are left out, fields added since take their defaults."""
    if not isinstance(recorded, dict):
        return TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"epochs", "seed", "time_budget_s", "device"}
    kept = {k: v for k, v in recorded.items() if k in known}
    if not isinstance(kept.get("grad_clip"), int | float):
        kept.pop("grad_clip", None)
    return TrainConfig(**kept)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train one architecture from its spec (arch.json)")
    p.add_argument("spec", type=Path, help="an ArchSpec JSON file, e.g. an export's arch.json")
    p.add_argument("-o", "--out", type=Path, default=Path("trained"), help="output directory (default ./trained)")
    add_training_options(p, epochs=10)
    p.set_defaults(handler=run)


def load_spec(path: Path) -> ArchSpec:
    if path.is_dir():
        raise SpecError(f"spec: {path} is a directory; expected an ArchSpec JSON file such as an export's arch.json")
    if not path.is_file():
        raise SpecError(f"spec: {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"spec: {path} is not UTF-8 text; expected an ArchSpec JSON file") from None
    except OSError as exc:
        raise SpecError(f"spec: {path} cannot be read ({exc.strerror or exc})") from None
    return ArchSpec.from_json(text)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    data = data_config(args.data, n_test=32, seed=args.seed)
    fit_and_print(spec, data, args, args.out)
    return 0


def fit_and_print(
    spec: ArchSpec, data: Any, args: argparse.Namespace, out: Path, recipe: TrainConfig | None = None
) -> None:
    """Train with the shared options of ``nas train``/``nas retrain`` (over ``recipe``), showing
    progress, then the outcome."""
    outcome = fit_architecture(
        spec,
        data,
        train_config(args, recipe),
        out,
        init=args.init,
        init_prefix=args.init_prefix,
        init_map=args.init_map,
        freeze_epochs=args.freeze_epochs,
        progress=lambda line: print(line, flush=True),
    )
    print_outcome(outcome)


def print_outcome(outcome: object) -> None:
    from nas._fit import FitOutcome

    assert isinstance(outcome, FitOutcome)
    result = outcome.result
    print(f"best validation Dice {result.best_dice:.4f} at epoch {result.best_epoch} ({result.seconds:.0f} s)")
    for name, measured in (("validation", result.metrics), ("test", result.test_metrics)):
        if measured is not None:
            parts = ", ".join(f"{k} {v:.4f}" for k, v in measured.mean.items())
            print(f"{name} ({measured.images} images): {parts}")
    if result.test_metrics is None:
        print("test: the data has no test split")
    print(f"written to {outcome.out_dir.resolve()}: {', '.join(outcome.files)}")
