"""The validated configuration of one search."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas._constraints import Constraints
from nas._errors import ConfigError
from nas._fit import InitSource
from search_spaces import SearchSpace, SpecError
from studies import DEFAULT_STORAGE, OBJECTIVES, check_objectives, parse_storage_url
from trainers import (
    DataError,
    FilesConfig,
    SyntheticConfig,
    TrainConfig,
    data_config_from_dict,
    determinism_note,
    read_json_object,
)

#: Samplers a study may use: NSGA-II (default), TPE, random, and an exhaustive grid for ablations.
SAMPLERS = ("nsga2", "tpe", "random", "grid")
#: How early stopping promotes at a rung (see ``nas._moasha``).
PROMOTIONS = ("pareto", "dice")

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

#: The space of the built-in demo: every registered block, dot-product similarity only.
#: Softmax attention is O(N²): at the 64x64 level its forward+backward takes ~30x the dot form's
#: on a CPU core, which would blow the demo's 10-minute budget. Spaces that can afford it allow it.
DEMO_SPACE = SearchSpace(
    blocks=("none", "pwa", "sa", "joint"),
    options=(("sa.similarity", ("dot",)), ("joint.similarity", ("dot",))),
    depths=(3, 4),
    base_widths=(8, 16),
)


NAMED_SPACES = {"demo": lambda: DEMO_SPACE, "widest": SearchSpace.widest}


SYNTHETIC = {"synthetic": 2, "synthetic3d": 3}


def data_config(text: str, **synthetic: Any) -> SyntheticConfig | FilesConfig:
    """``synthetic`` (2D images) or ``synthetic3d`` (3D volumes) give the built-in task with the
    ``synthetic`` fields; otherwise ``text`` names a JSON file whose relative paths (``path``,
    ``groups_file``, ``test_path``, ``test_list``) are taken relative to the file."""
    if text in SYNTHETIC:
        return SyntheticConfig(**synthetic, spatial_dims=SYNTHETIC[text])
    path = Path(text)
    if not path.is_file():
        raise DataError(f"--data: {text!r} is neither 'synthetic', 'synthetic3d' nor a JSON file of data fields")
    config = data_config_from_dict(read_json_object(path, "--data", "a JSON object of data fields"))
    return config.resolved(path.parent) if isinstance(config, FilesConfig) else config


def load_space(text: str) -> SearchSpace:
    """A named space (``demo``, ``widest``) or a JSON file holding ``SearchSpace.to_dict()``."""
    if text in NAMED_SPACES:
        return NAMED_SPACES[text]()
    path = Path(text)
    if not path.is_file():
        raise SpecError(f"--space: {text!r} is neither a named space ({', '.join(NAMED_SPACES)}) nor a file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SpecError(f"--space: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"--space: {path} must hold a JSON object of space fields")
    return SearchSpace.from_dict(data)


def unique_study_name(prefix: str = "search") -> str:
    """A study name that is unique in practice: a UTC timestamp and a random suffix."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


def check_side(space: SearchSpace, side: int, field_name: str) -> None:
    """A network of the space's deepest backbone halves its input ``depth - 1`` times (``depth`` for
    ``resnet34``, whose stem halves it first)."""
    stride = space.input_multiple()
    if side % stride:
        raise ConfigError(
            f"{field_name}: {side} is not divisible by {stride}, which a {max(space.depths)}-level backbone needs"
        )


def check_input_shape(space: SearchSpace, data: SyntheticConfig | FilesConfig, input_shape: tuple[int, ...]) -> None:
    """The loaded network input ``(C, *spatial)`` fits every backbone depth of the space (whole images
    are padded to ``data.pad_multiple``, patches are ``data.patch``, resized images ``data.size``)."""
    stride = space.input_multiple()
    bad = [s for s in input_shape[1:] if s % stride]
    if not bad:
        return
    if isinstance(data, SyntheticConfig):
        check_side(space, bad[0], "--image-size")
        return
    field_name = (
        "data.patch" if data.patch is not None else "data.size" if data.size is not None else "data.pad_multiple"
    )
    shape = "×".join(str(s) for s in input_shape[1:])
    raise ConfigError(
        f"{field_name}: the network input is {shape}, not divisible by {stride}, which a "
        f"{max(space.depths)}-level backbone needs; choose a multiple of {stride} (or fewer levels: space.depths)"
    )


#: ``concurrency`` that fills the cluster (``SearchConfig.slots``).
AUTO = "auto"


@dataclass(frozen=True)
class SearchConfig:
    """Everything one ``nas search`` needs; validated on construction, before anything is written."""

    study: str = field(default_factory=unique_study_name)
    storage: str = DEFAULT_STORAGE
    trials: int = 20
    #: Trials running at once, or ``"auto"``: as many as the Ray cluster's CPUs (and GPUs, when
    #: trials take GPUs) hold at ``cpus_per_trial``/``gpus_per_trial`` each, counted when it starts.
    concurrency: int | str = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    seed: int = 0
    data: SyntheticConfig | FilesConfig = field(default_factory=SyntheticConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    space: SearchSpace = DEMO_SPACE
    out_dir: Path = Path("nas-runs")
    address: str | None = None
    constraints: Constraints = field(default_factory=Constraints)
    #: Weights kept: the Pareto set plus this many best trials by Dice (None: every trial's).
    keep_top: int | None = 3
    sampler: str = "nsga2"
    #: NSGA-II's population (None: a quarter of the trials, between 4 and 10).
    population: int | None = None
    #: Train each architecture with this many training seeds (the seed becomes a sampled parameter).
    replicates: int = 1
    #: Stop the search after this many seconds of wall time in this run (running trials end PRUNED).
    wall_time_s: float | None = None
    #: ASHA early stopping on validation Dice: first rung after this many epochs (None: off).
    grace_period: int | None = None
    reduction_factor: float = 3.0
    #: How early stopping ranks a rung: ``pareto`` (non-dominated sorting of Dice and counted costs,
    #: MOASHA) or ``dice`` (validation Dice alone, Ray's ASHA).
    promotion: str = "pareto"
    #: Enqueue the reference points first: no attention, pwa, sa and the presets the space holds.
    baselines: bool = True
    #: 2 or 3 of dice (max), gflops, params, latency, memory (min).
    objectives: tuple[str, ...] = OBJECTIVES
    #: The confirm stage (0 members: off): after the search's budget, this many members of the front
    #: over architectures and their no-attention twins train again with ``confirm_seeds`` fresh seeds.
    confirm_members: int = 3
    confirm_seeds: int = 3
    #: The confirm stage runs only when the search's budget is at least this many trials: below
    #: that the front is little more than the baselines, and confirming it would cost more than the search.
    confirm_min_trials: int = 10
    #: Weights every trial starts from (a study file's ``train.init`` and ``train.init_map``).
    init: InitSource | None = None

    def __post_init__(self) -> None:
        if not _STUDY_NAME.match(self.study):
            raise ConfigError(
                f"--study: {self.study!r} is not valid; use 1-128 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        parse_storage_url(self.storage)
        for name in ("trials", "concurrency"):
            value = getattr(self, name)
            if name == "concurrency" and value == AUTO:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                extra = " or auto (fill the cluster)" if name == "concurrency" else ""
                raise ConfigError(f"--{name}: {value!r} is not valid; expected a positive integer{extra}")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"--cpus-per-trial: {self.cpus_per_trial!r} is not valid; expected a number > 0")
        object.__setattr__(self, "objectives", check_objectives(self.objectives))
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler.name: {self.sampler!r} is not valid; expected one of {', '.join(SAMPLERS)}")
        for name in ("population", "grace_period"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}: {value!r} is not valid; expected a positive integer or null")
        if not isinstance(self.confirm_members, int) or self.confirm_members < 0:
            raise ConfigError(
                f"confirm.members: {self.confirm_members!r} is not valid; expected an integer ≥ 0 (0: no confirm stage)"
            )
        if not isinstance(self.confirm_seeds, int) or self.confirm_seeds < 2:
            raise ConfigError(
                f"confirm.seeds: {self.confirm_seeds!r} is not valid; expected an integer ≥ 2 (an interval needs two)"
            )
        if not isinstance(self.confirm_min_trials, int) or self.confirm_min_trials < 1:
            raise ConfigError(
                f"confirm.min_trials: {self.confirm_min_trials!r} is not valid; expected a positive integer"
            )
        if not isinstance(self.replicates, int) or self.replicates < 1:
            raise ConfigError(f"sampler.replicates: {self.replicates!r} is not valid; expected a positive integer")
        if self.wall_time_s is not None and not self.wall_time_s > 0:
            raise ConfigError(f"budget.wall_time: {self.wall_time_s!r} is not valid; expected a duration > 0")
        if not self.reduction_factor > 1:
            raise ConfigError(
                f"fidelity.reduction_factor: {self.reduction_factor!r} is not valid; expected a number > 1"
            )
        if self.grace_period is not None and self.grace_period >= self.train.epochs:
            raise ConfigError(
                f"fidelity.grace_period: {self.grace_period} is not valid; expected fewer than the "
                f"{self.train.epochs} epochs (fidelity.epochs), or null to switch early stopping off"
            )
        if self.promotion not in PROMOTIONS:
            raise ConfigError(
                f"fidelity.promotion: {self.promotion!r} is not valid; expected one of {', '.join(PROMOTIONS)}"
            )
        if self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial: {self.gpus_per_trial!r} is not valid; expected a number ≥ 0")
        # What is known before the data is read; the loaded input shape is checked by check_input_shape.
        if isinstance(self.data, SyntheticConfig):
            check_side(self.space, int(self.data.size or 0), "--image-size")
        elif self.data.patch is not None or self.data.size is not None:  # the network sees patches if set
            name = "patch" if self.data.patch is not None else "size"
            check_side(self.space, getattr(self.data, name), f"data.{name}")

    @property
    def study_dir(self) -> Path:
        """Where this study's weights and run logs go: ``out_dir/study``, absolute."""
        return (self.out_dir / self.study).resolve()

    def study_attrs(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """What the study records so that every trial, export and report knows its context."""
        return {
            "data": self.data.to_dict(),
            "train": {**dataclasses.asdict(self.train), "threads_per_trial": self.threads_per_trial},
            "space": self.space.to_dict(),
            "input_shape": list(input_shape),
            "artifact_dir": str(self.study_dir),
            "constraints": dataclasses.asdict(self.constraints),
            "max_memory_mb": self.constraints.max_memory_mb,
            "keep_top": self.keep_top,
            "seed": self.seed,
            "sampler": self.sampler,
            "objectives": list(self.objectives),
            "replicates": self.replicates,
            # What a rerun of a trial reproduces (REUSED trials rest on it): trials on a GPU when asked for.
            "determinism": determinism_note(torch.device("cuda" if self.gpus_per_trial > 0 else "cpu")),
            "trial_budget": self.trials,
            "confirm": {
                "members": self.confirm_members,
                "seeds": self.confirm_seeds,
                "min_trials": self.confirm_min_trials,
            },
            "fidelity": {
                "epochs": self.train.epochs,
                "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor,
                "promotion": self.promotion,
            },
        }

    @property
    def threads_per_trial(self) -> int:
        return max(1, int(self.cpus_per_trial))

    def slots(self, resources: Mapping[str, float]) -> int:
        """Trials at once on a cluster of ``resources`` (``ray.cluster_resources()``): ``concurrency``,
        or for ``auto`` as many as its CPUs hold at ``cpus_per_trial`` each and, when trials take
        GPUs, its GPUs at ``gpus_per_trial`` (so no CPU or device idles while trials wait)."""
        if self.concurrency != AUTO:
            return int(self.concurrency)
        fits = [float(resources.get("CPU", 0.0)) / self.cpus_per_trial]
        if self.gpus_per_trial > 0:
            fits.append(float(resources.get("GPU", 0.0)) / self.gpus_per_trial)
        # A hair under a whole number (0.1 + 0.2 ...) still fits: round before flooring.
        return max(1, int(min(round(f, 6) for f in fits)))
