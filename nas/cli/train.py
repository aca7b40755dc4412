"""``nas train SPEC.json``: train one architecture (a baseline, an exported or hand-written spec)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas._config import data_config
from nas._fit import AUTO, fit_architecture, init_map_choices
from nas.cli._common import env_default, non_negative_int, positive_float, positive_int
from search_spaces import ArchSpec, SpecError
from trainers import LOSSES, OPTIMIZERS, SCHEDULES, TTA_MODES, TrainConfig


def add_training_options(
    p: argparse.ArgumentParser, *, epochs: int, data_default: str | None = None, tta_default: str | None = None
) -> None:
    """The options ``nas train`` and ``nas retrain`` share (``"study"`` defaults: what the study used)."""
    p.add_argument(
        "--data",
        default=data_default or env_default("data", "synthetic"),
        help="synthetic or synthetic3d (built in, with a 32-image test set) or a JSON file of data fields (see README)"
        + ("; default: the data the study searched on" if data_default else ""),
    )
    recipe = TrainConfig()  # one set of defaults: what a search trains with
    p.add_argument("--epochs", type=positive_int, default=epochs)
    p.add_argument("--batch-size", type=positive_int, default=recipe.batch_size)
    p.add_argument("--lr", type=positive_float, default=recipe.lr)
    p.add_argument("--loss", default=recipe.loss, choices=tuple(LOSSES))
    p.add_argument("--optimizer", default=recipe.optimizer, choices=OPTIMIZERS)
    p.add_argument("--schedule", default=recipe.schedule, choices=SCHEDULES)
    p.add_argument("--grad-clip", type=positive_float, default=None)
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


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        loss=args.loss,
        optimizer=args.optimizer,
        schedule=args.schedule,
        grad_clip=args.grad_clip,
        seed=args.seed,
        tta=args.tta,
    )


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


def fit_and_print(spec: ArchSpec, data: Any, args: argparse.Namespace, out: Path) -> None:
    """Train with the shared options of ``nas train``/``nas retrain``, showing progress, then the outcome."""
    outcome = fit_architecture(
        spec,
        data,
        train_config(args),
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
