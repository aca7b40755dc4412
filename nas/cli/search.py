"""``nas search``: run a search on the built-in data and report where everything went."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards import report_html
from nas._config import SearchConfig, unique_study_name
from nas._search import run_search
from nas.cli._common import env_default, non_negative_float, non_negative_int, positive_float, positive_int
from nas.cli._data import data_config
from nas.cli._tables import counts_line, pareto_table
from nas.cli.space import load_space
from studies import parse_storage_url, redact
from trainers import (
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    FilesConfig,
    SyntheticConfig,
    TrainConfig,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="run a search (default: the built-in synthetic data)",
        description="Search attention architectures with Ray Tune; record them in an Optuna study.",
    )
    p.add_argument(
        "--study", default=env_default("study", None), help="study name (default: unique, search-<time>-<id>)"
    )
    from nas.cli._common import add_storage

    add_storage(p)
    p.add_argument("--trials", type=positive_int, default=env_default("trials", 20, positive_int))
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=env_default("epochs", 10, positive_int),
        help="training epochs per trial (the fidelity every trial shares)",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        default=env_default("concurrency", 2, positive_int),
        help="trials running at once",
    )
    p.add_argument("--cpus-per-trial", type=non_negative_float, default=env_default("cpus_per_trial", 1.0, float))
    p.add_argument(
        "--gpus-per-trial",
        type=non_negative_float,
        default=env_default("gpus_per_trial", 0.0, float),
        help="GPUs per trial; fractions share a GPU",
    )
    p.add_argument("--seed", type=non_negative_int, default=env_default("seed", 0, int))
    p.add_argument(
        "--image-size",
        type=positive_int,
        default=env_default("image_size", None, positive_int),
        help="side of the synthetic images or volumes, a multiple of 16 (default 64 in 2D, 32 in 3D)",
    )
    p.add_argument(
        "--data",
        default=env_default("data", "synthetic"),
        help="synthetic (built in, 2D), synthetic3d (built in, 3D volumes), or a JSON file of data fields, e.g. "
        '{"kind": "drive", "path": "DRIVE", "channels": "green", "patch": 64} (kinds: folder2d, drive, msd, nnunet)',
    )
    p.add_argument("--train-images", type=positive_int, default=env_default("train_images", 96, positive_int))
    p.add_argument("--val-images", type=positive_int, default=env_default("val_images", 32, positive_int))
    p.add_argument(
        "--out-dir",
        type=Path,
        default=env_default("out_dir", Path("nas-runs"), Path),
        help="where weights, Ray logs and the report go (default ./nas-runs)",
    )
    p.add_argument(
        "--address",
        default=env_default("address", None),
        help="Ray cluster address to attach to (default: start a local runtime)",
    )
    p.add_argument(
        "--space",
        default=env_default("space", "demo"),
        help="the search space: demo, widest, or a JSON file of space fields (see nas space show)",
    )
    p.add_argument(
        "--max-memory-mb",
        type=non_negative_float,
        default=env_default("max_memory_mb", None, float),
        help="refuse, untrained, candidates whose estimated training peak memory (batch 1) exceeds this",
    )
    p.add_argument(
        "--loss", default=env_default("loss", "dice_ce"), choices=tuple(LOSSES), help="training loss (default dice_ce)"
    )
    p.add_argument("--optimizer", default=env_default("optimizer", "adamw"), choices=OPTIMIZERS)
    p.add_argument(
        "--schedule",
        default=env_default("schedule", "cosine"),
        choices=SCHEDULES,
        help="learning-rate schedule: cosine, poly (AF-Net) or step (MPU-Net, halved every 100 iterations)",
    )
    p.add_argument("--lr", type=positive_float, default=env_default("lr", 3e-3, float), help="learning rate")
    p.add_argument(
        "--grad-clip", type=positive_float, default=env_default("grad_clip", None, float), help="max gradient norm"
    )
    p.add_argument(
        "--keep-weights",
        default=env_default("keep_weights", "pareto"),
        choices=("pareto", "all"),
        help="pareto (default): keep weights of the Pareto set and the --keep-top best trials only; all: every trial's",
    )
    p.add_argument("--keep-top", type=non_negative_int, default=env_default("keep_top", 3, int))
    p.add_argument("--report", type=Path, default=None, help="HTML report path (default OUT_DIR/STUDY/report.html)")
    p.set_defaults(handler=run)


def load_data_config(args: argparse.Namespace) -> SyntheticConfig | FilesConfig:
    """``--data synthetic``/``synthetic3d`` (sized by --image-size, --train-images, --val-images) or a JSON file."""
    sizes = {"n_train": args.train_images, "n_val": args.val_images, "size": args.image_size}
    return data_config(args.data, **sizes, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    config = SearchConfig(
        study=args.study or unique_study_name(),
        storage=args.storage,
        trials=args.trials,
        concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        seed=args.seed,
        data=load_data_config(args),
        train=TrainConfig(
            epochs=args.epochs,
            seed=args.seed,
            loss=args.loss,
            optimizer=args.optimizer,
            schedule=args.schedule,
            lr=args.lr,
            grad_clip=args.grad_clip,
        ),
        out_dir=args.out_dir,
        address=args.address,
        max_memory_mb=args.max_memory_mb,
        keep_top=None if args.keep_weights == "all" else args.keep_top,
        space=load_space(args.space),
    )

    def show(message: str) -> None:
        print(message, flush=True)

    outcome = run_search(config, on_event=show)
    report = args.report or Path(outcome.study_dir) / "report.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        report_html(outcome.study, outcome.records, storage=redact(parse_storage_url(outcome.storage))),
        encoding="utf-8",
    )
    print()
    print(f"study {outcome.study}: {counts_line(outcome.records)} in {outcome.seconds:.0f} s")
    print(pareto_table(outcome.records))
    print()
    print(f"study database: {outcome.storage}  (study name {outcome.study})")
    print(f"weights and Ray logs: {outcome.study_dir}")
    print(f"report: {report.resolve()}")
    if outcome.pareto:
        best = max(outcome.pareto, key=lambda r: r.dice or 0.0)
        print(f"next: nas status {outcome.study} --storage {outcome.storage}")
        print(f"      nas export {outcome.study} --trial {best.number} --storage {outcome.storage}")
        print(f"      nas dashboard --storage {outcome.storage} --study {outcome.study}")
    sys.stdout.flush()
    return 0
