"""Does the default training recipe learn, or collapse? Every run's validation curve, on real data.

A trial *collapses* when its validation Dice ends below 0.8 × its best epoch's or falls to 0 while
it trains: then where it lands on the front says more about the recipe than about the architecture.
This benchmark trains, with ``TrainConfig()``'s defaults at a search's fidelity (10 epochs):

- on DRIVE (green channel, 64×64 patches), Kvasir-SEG (96×96, 200 images) and MSD hippocampus
  (3D, 30 volumes, 32³ patches): the no-attention U-Net and three representative mechanisms (a gate, pwa; a
  self-attention, sa; a composition, joint parallel/inside) at the skips of an 8-16-32 U-Net,
  5 seeds each;
- on DRIVE: every other mechanism of the ``attention-zoo`` preset once, at every placement it allows;

and with ``--recipe previous`` the recipe the defaults replaced (AdamW 3e-3 without warm-up, Dice
over background and foreground per image), so that both can be set side by side. It needs the
real datasets (``$NAS_SHARED_DATA``, default ``../shared/data``); each run uses one thread and two
run at once. About 35 minutes on 2 cores; ``--quick`` trains 2 epochs of one seed per dataset.

    .venv/bin/python bench/recipe.py [--quick] [--recipe default|previous] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

import _report  # noqa: E402
from _report import Headline, Section  # noqa: E402

SHARED = Path(os.environ.get("NAS_SHARED_DATA", REPO.parent / "shared" / "data"))

#: name → the data fields of each dataset (the same as a user's --data file).
DATASETS: dict[str, dict[str, Any]] = {
    "DRIVE": {"kind": "drive", "path": str(SHARED / "drive"), "channels": "green", "patch": 64},
    "Kvasir-SEG": {"kind": "folder2d", "path": str(SHARED / "kvasir_seg"), "size": 96, "limit": 200},
    "MSD hippocampus": {
        "kind": "msd",
        "path": str(SHARED / "msd_hippocampus"),
        "limit": 30,
        "patch": 32,
        "patches_per_image": 2,
    },
}
REPRESENTATIVE = ("none", "pwa", "sa", "joint")
#: The recipe the defaults replaced, for the side-by-side (``--recipe previous``).
PREVIOUS: dict[str, Any] = {"lr": 3e-3, "warmup_fraction": 0.0, "loss": "dice_ce_image"}
#: The issue's bar; stricter than ``trainers.collapse_note``, which also asks that the loss fell.
COLLAPSE_RATIO = 0.8


@dataclass(frozen=True)
class Run:
    dataset: str
    block: str
    seed: int
    epochs: int
    recipe: str


@dataclass
class Outcome:
    run: Run
    spec: str
    curve: list[float]
    losses: list[float]
    seconds: float

    @property
    def best(self) -> float:
        return max(self.curve)

    @property
    def final(self) -> float:
        return self.curve[-1]

    @property
    def collapsed(self) -> bool:
        return self.best <= 0 or self.final < COLLAPSE_RATIO * self.best or self.final <= 0


def _spec(block: str, data: Any) -> Any:
    """The block at every site the zoo's space allows it (representative ones at the skips)."""
    from search_spaces import ArchSpec, AttentionSpec, SampleContext, SearchSpace, baseline_params, sample_spec

    context = SampleContext(spatial_dims=data.spatial_dims, in_channels=data.in_channels, out_channels=data.num_classes)
    if block in REPRESENTATIVE:
        options = {"arrangement": "parallel", "shortcut": "inside", "similarity": "dot"} if block == "joint" else {}
        options = {"similarity": "dot"} if block == "sa" else options
        placement = {} if block == "none" else {"skip": [0, 1]}
        attention = AttentionSpec.from_dict({"block": block, "options": options, "placement": placement})
        return ArchSpec(
            spatial_dims=data.spatial_dims,
            in_channels=data.in_channels,
            out_channels=data.num_classes,
            channels=(8, 16, 32),
            attention=attention,
        )
    space = SearchSpace(
        blocks=(block,),
        placements=("skip", "encoder", "bottleneck", "decoder"),
        backbones=("unet",),
        depths=(3,),
        base_widths=(8,),
    )
    params = baseline_params(space, block, context)
    assert params is not None, block

    class Fixed:
        def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
            return params[name]

    return sample_spec(Fixed(), space, context)


_DATA: dict[str, Any] = {}


def _train_one(run: Run) -> Outcome:
    import torch

    from search_spaces import build_model
    from trainers import TrainConfig, data_config_from_dict, load_data, seed_everything, train

    torch.set_num_threads(1)
    if run.dataset not in _DATA:  # validation only: a collapse shows there, the test set would add time
        loaded = load_data(data_config_from_dict(DATASETS[run.dataset]))
        _DATA[run.dataset] = replace(loaded, test_images=(), test_labels=(), test_masks=None)
    data = _DATA[run.dataset]
    spec = _spec(run.block, data)
    config = TrainConfig(epochs=run.epochs, seed=run.seed)
    if run.recipe == "previous":
        config = replace(config, **PREVIOUS)
    seed_everything(run.seed)
    started = time.perf_counter()
    result = train(build_model(spec), data, config)
    return Outcome(
        run,
        spec.short_label(),
        [h["val_dice"] for h in result.history],
        [h["loss"] for h in result.history],
        time.perf_counter() - started,
    )


#: The rest of the attention-zoo preset's mechanisms, measured once each on DRIVE.
ZOO = (
    "se",
    "cbam",
    "da_block",
    "pam",
    "cam",
    "cca",
    "ag",
    "gff",
    "mff",
    "fsam",
    "bam",
    "coordinate",
    "eca",
    "sk",
)


def runs(quick: bool, recipe: str, only: Sequence[str] = ()) -> list[Run]:
    from search_spaces import block_names

    if quick:
        return [Run(name, "joint", 0, 2, recipe) for name in DATASETS]
    if only:  # a subset of the zoo, e.g. to finish a run that was stopped
        return [Run("DRIVE", b, 0, 10, recipe) for b in only]
    out = [Run(d, b, s, 10, recipe) for d in DATASETS for b in REPRESENTATIVE for s in range(5)]
    if recipe == "default":  # the rest of the zoo is measured on the defaults only
        out += [Run("DRIVE", b, 0, 10, recipe) for b in ZOO if b in block_names()]
    return out


def measure(quick: bool, recipe: str = "default", only: Sequence[str] = ()) -> Section:
    import monai
    import torch

    missing = [name for name, fields in DATASETS.items() if not Path(fields["path"]).is_dir()]
    if missing:
        return Section(title="Training recipe", body=f"Not run: {', '.join(missing)} not found under {SHARED}.")
    todo = runs(quick, recipe, only)
    # Heavy runs first, so that the two workers finish together.
    todo.sort(key=lambda r: (r.dataset != "MSD hippocampus", r.dataset != "Kvasir-SEG"))
    with multiprocessing.get_context("spawn").Pool(2, maxtasksperchild=None) as pool:
        outcomes = []
        for o in pool.imap(_train_one, todo, chunksize=1):
            outcomes.append(o)
            print(f"[recipe] {len(outcomes)}/{len(todo)} {o.run}: val Dice {_r(o.curve)}", flush=True)
    return _section(outcomes, quick, recipe, (f"torch {torch.__version__}", f"monai {monai.__version__}"))


def _r(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def _section(outcomes: list[Outcome], quick: bool, recipe: str, versions: tuple[str, ...]) -> Section:
    from trainers import TrainConfig

    config = TrainConfig() if recipe == "default" else replace(TrainConfig(), **PREVIOUS)
    collapsed = [o for o in outcomes if o.collapsed]
    rows = [
        "| dataset | mechanism | network | seed | best val Dice (epoch) | final | final ÷ best | collapsed | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        ratio = o.final / o.best if o.best > 0 else math.nan
        rows.append(
            f"| {o.run.dataset} | {o.run.block} | `{o.spec}` | {o.run.seed} | {o.best:.3f} "
            f"({o.curve.index(o.best) + 1}) | {o.final:.3f} | {ratio:.2f} | {'**yes**' if o.collapsed else 'no'} | "
            f"{o.seconds:.0f} |"
        )
    summary = [
        "| dataset | mechanism | runs | mean best | mean final | worst final ÷ best | collapsed |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.run.dataset, o.run.block), []).append(o)
    for (dataset, block), group in groups.items():
        worst = min((o.final / o.best if o.best > 0 else 0.0) for o in group)
        summary.append(
            f"| {dataset} | {block} | {len(group)} | {sum(o.best for o in group) / len(group):.3f} | "
            f"{sum(o.final for o in group) / len(group):.3f} | {worst:.2f} | {sum(o.collapsed for o in group)} |"
        )
    shown = ("optimizer", "lr", "warmup_fraction", "schedule", "loss", "batch_size", "weight_decay", "head_prior")
    recipe_line = {k: v for k, v in asdict(config).items() if k in shown}
    body = "\n".join(
        [
            f"Recipe `{recipe}`: {json.dumps(recipe_line)}; {outcomes[0].run.epochs if outcomes else 0} epochs. "
            f"A run *collapses* when its last validation Dice is below {COLLAPSE_RATIO} × its best epoch's, or 0.",
            "",
            *summary,
            "",
            "<details><summary>Every run, with its validation curve</summary>",
            "",
            *rows,
            "",
            *[
                f"- {o.run.dataset} {o.run.block} seed {o.run.seed}: val Dice {_r(o.curve)}, loss {_r(o.losses)}"
                for o in outcomes
            ],
            "",
            "</details>",
        ]
    )
    headline = Headline(
        area="Training recipe",
        what=f"runs that collapse (final val Dice < {COLLAPSE_RATIO} × best, or 0), recipe `{recipe}`"
        + (" (quick)" if quick else ""),
        figure=f"{len(collapsed)} of {len(outcomes)}",
        goal="0",
        met=not collapsed,
    )
    return Section(title="Training recipe", body=body, headlines=[headline], versions=versions)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--recipe", choices=("default", "previous"), default="default")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--zoo", default="", help=f"only these zoo mechanisms on DRIVE, e.g. cam,ag ({', '.join(ZOO)})")
    args = parser.parse_args(argv)
    only = [b.strip() for b in args.zoo.split(",") if b.strip()]
    unknown = [b for b in only if b not in ZOO]
    if unknown:
        parser.error(f"--zoo: {unknown[0]!r} is not one of {', '.join(ZOO)}")
    section = _report.timed_measure(lambda quick: measure(quick, args.recipe, only), args.quick)
    command = "python bench/recipe.py" + (" --quick" if args.quick else "") + f" --recipe {args.recipe}"
    command += f" --zoo {','.join(only)}" if only else ""
    _report.write_alone(section, command, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
