"""``nas search``: run a search on the built-in data and report where everything went."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

from dashboards import report_html
from nas._config import AUTO, SAMPLERS, SYNTHETIC, SearchConfig, data_config
from nas._errors import ConfigError
from nas._fit import init_map_choices
from nas._search import run_search
from nas._studyfile import parse_override, preset_names, search_config
from nas.cli._common import env_default, non_negative_float, non_negative_int, positive_float, positive_int
from nas.cli._progress import ProgressView
from nas.cli._tables import counts_line, pareto_table, verdict_table
from studies import hv_reference, load_study, open_storage, parse_storage_url, redact
from trainers import LOSSES, OPTIMIZERS, SCHEDULES, DataError

#: ``--flag`` → the study-file key it overrides (flags win over the file; NAS_* variables act as flags).
FLAG_KEYS = {
    "study": "name",
    "storage": "storage",
    "trials": "budget.trials",
    "wall_time": "budget.wall_time",
    "epochs": "fidelity.epochs",
    "grace_period": "fidelity.grace_period",
    "concurrency": "concurrency",
    "cpus_per_trial": "resources.cpus",
    "gpus_per_trial": "resources.gpus",
    "seed": "sampler.seed",
    "sampler": "sampler.name",
    "objectives": "objectives",
    "data": "data",
    "space": "space",
    "out_dir": "out_dir",
    "address": "address",
    "max_gflops": "constraints.max_gflops",
    "max_params": "constraints.max_params",
    "max_memory_mb": "constraints.max_memory_mb",
    "loss": "train.loss",
    "optimizer": "train.optimizer",
    "schedule": "train.schedule",
    "lr": "train.lr",
    "grad_clip": "train.grad_clip",
    "init": "train.init",
    "init_map": "train.init_map",
    "keep_weights": "weights.keep",
    "keep_top": "weights.top",
}


def _concurrency(text: str) -> int | str:
    """``--concurrency``: a positive integer, or ``auto``."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; expected a positive integer or auto") from None


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="run a search (default: the demo preset on the built-in synthetic data)",
        description="Search attention architectures with Ray Tune; record them in an Optuna study. "
        "CONFIG is a study file (YAML) or a preset; options override its keys. Running the same "
        "command again on an existing study resumes it.",
    )
    p.add_argument(
        "config",
        nargs="?",
        default=env_default("config", "demo"),
        help=f"a study YAML file or a preset: {', '.join(preset_names())} (default demo)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any key of the study file, e.g. --set sampler.name=tpe --set fidelity.grace_period=2",
    )
    p.add_argument(
        "--study", default=env_default("study", None), help="study name (default: the file's name: or unique)"
    )
    p.add_argument("--storage", default=env_default("storage", None), help="SQLAlchemy URL of the study database")
    p.add_argument("--trials", type=positive_int, default=env_default("trials", None, positive_int))
    p.add_argument(
        "--wall-time", default=env_default("wall_time", None), help="stop after this long, e.g. 3600, 90m or 2h"
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=env_default("epochs", None, positive_int),
        help="training epochs per trial (the fidelity every trial shares)",
    )
    p.add_argument(
        "--grace-period",
        type=positive_int,
        default=env_default("grace_period", None, positive_int),
        help="ASHA early stopping: first rung after this many epochs",
    )
    p.add_argument("--sampler", choices=SAMPLERS, default=env_default("sampler", None))
    p.add_argument(
        "--objectives",
        type=_names,
        default=env_default("objectives", None, _names),
        help="2 or 3 of dice, gflops, params, latency, memory, comma-separated (default dice,gflops)",
    )
    p.add_argument(
        "--concurrency",
        type=_concurrency,
        default=env_default("concurrency", None, _concurrency),
        help="trials running at once, or auto: as many as the Ray cluster's CPUs (and GPUs) hold per trial",
    )
    p.add_argument("--cpus-per-trial", type=positive_float, default=env_default("cpus_per_trial", None, float))
    p.add_argument(
        "--gpus-per-trial",
        type=non_negative_float,
        default=env_default("gpus_per_trial", None, float),
        help="GPUs per trial; fractions share a GPU",
    )
    p.add_argument("--seed", type=non_negative_int, default=env_default("seed", None, int))
    p.add_argument(
        "--image-size",
        type=positive_int,
        default=env_default("image_size", None, positive_int),
        help="side of the synthetic images or volumes, a multiple of 16 (default 64 in 2D, 32 in 3D)",
    )
    p.add_argument(
        "--data",
        default=env_default("data", None),
        help="synthetic (built in, 2D), synthetic3d (built in, 3D volumes), or a JSON file of data fields, e.g. "
        '{"kind": "drive", "path": "DRIVE", "channels": "green", "patch": 64} (kinds: folder2d, drive, msd, nnunet)',
    )
    p.add_argument("--train-images", type=positive_int, default=env_default("train_images", None, positive_int))
    p.add_argument("--val-images", type=positive_int, default=env_default("val_images", None, positive_int))
    p.add_argument(
        "--out-dir",
        default=env_default("out_dir", None),
        help="where weights, Ray logs and the report go (default ./nas-runs)",
    )
    p.add_argument(
        "--address",
        default=env_default("address", None),
        help="Ray cluster address to attach to, e.g. auto or 10.0.0.1:6379 (default: start a local runtime)",
    )
    p.add_argument(
        "--space",
        default=env_default("space", None),
        help="the search space: demo, widest, or a JSON file of space fields (see nas space show)",
    )
    for flag, what in (("gflops", "GFLOPs"), ("params", "parameters"), ("memory-mb", "estimated training memory")):
        p.add_argument(
            f"--max-{flag}",
            type=positive_float,
            default=env_default(f"max_{flag}", None, float),
            help=f"record candidates whose {what} (batch 1) exceed this INFEASIBLE, untrained",
        )
    p.add_argument("--loss", default=env_default("loss", None), choices=tuple(LOSSES), help="training loss")
    p.add_argument("--optimizer", default=env_default("optimizer", None), choices=OPTIMIZERS)
    p.add_argument(
        "--schedule",
        default=env_default("schedule", None),
        choices=SCHEDULES,
        help="learning-rate schedule: cosine, poly (AF-Net) or step (MPU-Net: halved after every sixth of the run)",
    )
    p.add_argument("--lr", type=positive_float, default=env_default("lr", None, float), help="learning rate")
    p.add_argument(
        "--grad-clip", type=positive_float, default=env_default("grad_clip", None, float), help="max gradient norm"
    )
    p.add_argument(
        "--init",
        default=env_default("init", None),
        help="a state dict every trial starts from (train.init; matched by name and shape after --init-map)",
    )
    p.add_argument(
        "--init-map",
        default=env_default("init_map", None),
        choices=init_map_choices(),
        help="how the --init file's tensor names become ours (train.init_map; default auto: recognised from the keys)",
    )
    p.add_argument(
        "--keep-weights",
        default=env_default("keep_weights", None),
        choices=("pareto", "all"),
        help="pareto (default): keep weights of the Pareto set and the --keep-top best trials only; all: every trial's",
    )
    p.add_argument("--keep-top", type=non_negative_int, default=env_default("keep_top", None, int))
    p.add_argument("--report", type=Path, default=None, help="HTML report path (default OUT_DIR/STUDY/report.html)")
    p.set_defaults(handler=run)


def build_config(args: argparse.Namespace) -> SearchConfig:
    """The study file (or preset) ``args.config`` with the given flags and ``--set`` overrides applied."""
    given = {flag: key for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None}
    overrides = [(key, getattr(args, flag)) for flag, key in given.items()]
    # A path given as a flag is taken from the working directory (in a study file, from the file's folder).
    overrides = [(k, str(Path(v).resolve()) if k == "train.init" else v) for k, v in overrides]
    overrides += [parse_override(text) for text in args.overrides]
    given_as = {key: "--" + flag.replace("_", "-") for flag, key in given.items()}
    synthetic = {"n_train": args.train_images, "n_val": args.val_images, "size": args.image_size}
    if args.data is not None and args.data not in SYNTHETIC:
        # A JSON file of data fields, read as before (its relative paths are taken from its folder).
        overrides = [o for o in overrides if o[0] != "data"]
        config = search_config(args.config, overrides, synthetic=synthetic, given_as=given_as)
        return dataclasses.replace(config, data=data_config(args.data, seed=config.seed))
    return search_config(args.config, overrides, synthetic=synthetic, given_as=given_as)


def _data_source(args: argparse.Namespace) -> str | None:
    """The file the data fields came from: the --data JSON file, or the study file that holds them."""
    if args.data is not None and args.data not in SYNTHETIC:
        return str(args.data)
    if args.data is None and Path(args.config).is_file():
        return str(args.config)
    return None


@contextlib.contextmanager
def _naming_the_data_file(args: argparse.Namespace) -> Iterator[None]:
    """A data error names the file its field is in (``data.json: data.size: ...``)."""
    try:
        yield
    except (DataError, ConfigError) as exc:
        source = _data_source(args)
        if source is None or not str(exc).startswith("data"):
            raise
        raise type(exc)(f"{source}: {exc}") from None


#: The built-in data's fields the flags set (``--image-size 17`` is refused as ``data.size``).
SYNTHETIC_FLAGS = {"size": "--image-size", "n_train": "--train-images", "n_val": "--val-images"}


@contextlib.contextmanager
def _naming_the_flags(args: argparse.Namespace) -> Iterator[None]:
    """A refused built-in data field set by a flag names the flag: ``data.size: 17 ... (given as --image-size)``."""
    try:
        yield
    except (DataError, ConfigError) as exc:
        text = str(exc)
        for name, flag in SYNTHETIC_FLAGS.items():
            value = getattr(args, {"size": "image_size", "n_train": "train_images", "n_val": "val_images"}[name])
            if value is not None and f"data.{name}:" in text:
                raise type(exc)(f"{text} (given as {flag})") from None
        raise


def run(args: argparse.Namespace) -> int:
    with _naming_the_flags(args), _naming_the_data_file(args):
        config = build_config(args)

    def show(message: str) -> None:
        print(message, flush=True)

    def opened(resumed: bool) -> None:
        # Only once the study exists: a search refused before that has nothing to resume.
        if args.study is None and not resumed:
            print(f"if this search stops, the same command with --study {config.study} resumes it", flush=True)
        study = load_study(open_storage(config.storage, create=False), config.study)
        view.reference = hv_reference(study.user_attrs)

    view = ProgressView()
    with _naming_the_flags(args), _naming_the_data_file(args):
        outcome = run_search(config, on_event=show, on_progress=view.update, on_opened=opened)
    report = args.report or Path(outcome.study_dir) / "report.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        report_html(
            outcome.study,
            outcome.records,
            storage=redact(parse_storage_url(outcome.storage)),
            reference=view.reference,
        ),
        encoding="utf-8",
    )
    print()
    print(f"study {outcome.study}: {counts_line(outcome.records)} in {outcome.seconds:.0f} s")
    if outcome.stopped_early and not outcome.interrupted:
        print(f"note: {outcome.stopped_early}")
    print(pareto_table(outcome.records))
    shown = verdict_table(outcome.records)
    if shown:
        print(shown)
    print()
    print(f"study database: {outcome.storage}  (study name {outcome.study})")
    print(f"weights and Ray logs: {outcome.study_dir}")
    print(f"report: {report.resolve()}")
    if outcome.interrupted:
        resume = f"nas search ... --study {outcome.study}" if args.study is None else "the same command"
        print(f"nas: {outcome.stopped_early}; {resume} resumes it", file=sys.stderr, flush=True)
        return 130
    if outcome.pareto:
        best = max(outcome.pareto, key=lambda r: r.dice or 0.0)
        print(f"next: nas status {outcome.study} --storage {outcome.storage}")
        print(f"      nas export {outcome.study} --trial {best.number} --storage {outcome.storage}")
        print(f"      nas dashboard --storage {outcome.storage} --study {outcome.study}")
    sys.stdout.flush()
    return 0
