"""The validated configuration of one search."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas._errors import ConfigError
from search_spaces import SearchSpace
from studies import DEFAULT_STORAGE, parse_storage_url
from trainers import FilesConfig, SyntheticConfig, TrainConfig

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


def unique_study_name(prefix: str = "search") -> str:
    """A study name that is unique in practice: a UTC timestamp and a random suffix."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class SearchConfig:
    """Everything one ``nas search`` needs; validated on construction, before anything is written."""

    study: str = field(default_factory=unique_study_name)
    storage: str = DEFAULT_STORAGE
    trials: int = 20
    concurrency: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    seed: int = 0
    data: SyntheticConfig | FilesConfig = field(default_factory=SyntheticConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    space: SearchSpace = DEMO_SPACE
    out_dir: Path = Path("nas-runs")
    address: str | None = None
    max_memory_mb: float | None = None
    #: Weights kept: the Pareto set plus this many best trials by Dice (None: every trial's).
    keep_top: int | None = 3

    def __post_init__(self) -> None:
        if not _STUDY_NAME.match(self.study):
            raise ConfigError(
                f"--study: {self.study!r} is not valid; use 1-128 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        parse_storage_url(self.storage)
        for name in ("trials", "concurrency"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name}: {value!r} is not valid; expected a positive integer")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"--cpus-per-trial: {self.cpus_per_trial!r} is not valid; expected a number > 0")
        if self.max_memory_mb is not None and not self.max_memory_mb > 0:
            raise ConfigError(f"--max-memory-mb: {self.max_memory_mb!r} is not valid; expected a number > 0")
        if self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial: {self.gpus_per_trial!r} is not valid; expected a number ≥ 0")
        if self.data.size % 2 ** (max(self.space.depths) - 1):
            raise ConfigError(
                f"--image-size: {self.data.size} is not divisible by {2 ** (max(self.space.depths) - 1)}, "
                f"which a {max(self.space.depths)}-level backbone needs"
            )

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
            "max_memory_mb": self.max_memory_mb,
            "keep_top": self.keep_top,
            "seed": self.seed,
        }

    @property
    def threads_per_trial(self) -> int:
        return max(1, int(self.cpus_per_trial))
