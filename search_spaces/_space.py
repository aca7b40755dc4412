"""Declared search spaces and define-by-run sampling of ``ArchSpec``s."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from search_spaces._errors import SpecError, choose
from search_spaces._registry import OptionValue, block_info, block_names
from search_spaces._spec import MAX_DEPTH, ArchSpec, AttentionSpec


class TrialLike(Protocol):
    """The part of an Optuna trial that sampling needs (so this package does not import Optuna)."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def level_subsets(levels: Sequence[int]) -> tuple[str, ...]:
    """Every non-empty subset of ``levels`` as a comma-joined string, smallest first."""
    ordered = sorted(set(levels))
    subsets = [
        ",".join(str(level) for level in combo)
        for size in range(1, len(ordered) + 1)
        for combo in itertools.combinations(ordered, size)
    ]
    return tuple(subsets)


@dataclass(frozen=True)
class SearchSpace:
    """Which architectures a study may visit.

    - ``blocks``: attention blocks to choose from (``none`` is "no attention").
    - ``options``: per ``block.option`` the allowed values; an option not listed ranges over all
      values the block registers.
    - ``depths`` and ``base_widths``: the backbone's levels; widths double per level.
    - ``skip_levels``: the levels attention may be placed at (``None``: every skip level); the
      sampler picks a non-empty subset of those that exist at the sampled depth.
    """

    blocks: tuple[str, ...] = ("none", "pwa", "sa", "joint")
    options: tuple[tuple[str, tuple[OptionValue, ...]], ...] = ()
    backbone: str = "unet"
    depths: tuple[int, ...] = (3, 4)
    base_widths: tuple[int, ...] = (8, 16)
    skip_levels: tuple[int, ...] | None = None
    norm: str = "instance"

    def __post_init__(self) -> None:
        if not self.blocks:
            raise SpecError(f"space.blocks: must not be empty; registered blocks: {', '.join(block_names())}")
        for name in self.blocks:
            block_info(name)
        for key, values in self.options:
            block, _, option = key.partition(".")
            info = block_info(block)
            if option not in info.options:
                raise SpecError(
                    f"space.options.{key}: block {block!r} has no option {option!r}; "
                    f"its options are: {', '.join(info.options) or 'none'}"
                )
            if not values:
                raise SpecError(f"space.options.{key}: must list at least one value")
            for value in values:
                choose(f"space.options.{key}", value, info.options[option])
        if not self.depths or not all(2 <= d <= MAX_DEPTH for d in self.depths):
            raise SpecError(
                f"space.depths: {list(self.depths)!r} is not valid; expected values in 2..{MAX_DEPTH}"
            )
        if not self.base_widths or not all(isinstance(w, int) and w >= 1 for w in self.base_widths):
            raise SpecError(f"space.base_widths: {list(self.base_widths)!r}; expected positive integers")
        if self.skip_levels is not None:
            usable = [lvl for lvl in self.skip_levels if lvl < max(self.depths) - 1]
            if not usable:
                raise SpecError(
                    f"space.skip_levels: {list(self.skip_levels)!r} has no level below the bottleneck "
                    f"of the deepest backbone (levels 0..{max(self.depths) - 2})"
                )

    def option_values(self, block: str, option: str) -> tuple[OptionValue, ...]:
        restricted = dict(self.options).get(f"{block}.{option}")
        return restricted if restricted is not None else block_info(block).options[option]

    def levels_at_depth(self, depth: int) -> tuple[int, ...]:
        levels = range(depth - 1)
        if self.skip_levels is None:
            return tuple(levels)
        return tuple(lvl for lvl in levels if lvl in self.skip_levels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": list(self.blocks),
            "options": {key: list(values) for key, values in self.options},
            "backbone": self.backbone,
            "depths": list(self.depths),
            "base_widths": list(self.base_widths),
            "skip_levels": None if self.skip_levels is None else list(self.skip_levels),
            "norm": self.norm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        known = ("blocks", "options", "backbone", "depths", "base_widths", "skip_levels", "norm")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SpecError(f"space.{unknown[0]}: unknown field; expected fields: {', '.join(known)}")
        kwargs: dict[str, Any] = dict(data)
        for key in ("blocks", "depths", "base_widths"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("skip_levels") is not None:
            kwargs["skip_levels"] = tuple(kwargs["skip_levels"])
        if "options" in kwargs:
            kwargs["options"] = tuple((k, tuple(v)) for k, v in dict(kwargs["options"]).items())
        return cls(**kwargs)


@dataclass(frozen=True)
class SampleContext:
    """What a sampled spec inherits from the study rather than from the space."""

    spatial_dims: int = 2
    in_channels: int = 1
    out_channels: int = 2


def sample_spec(
    trial: TrialLike, space: SearchSpace | None = None, context: SampleContext | None = None
) -> ArchSpec:
    """Sample one architecture define-by-run; parameter names are stable across trials.

    Only ``suggest_categorical`` is used, so samplers see the space as it is declared. A block
    whose only possible placement would be empty is never offered, so no invalid point is sampled.
    """
    space = space or SearchSpace()
    context = context or SampleContext()
    depth = trial.suggest_categorical("backbone.depth", list(space.depths))
    base = trial.suggest_categorical("backbone.base_width", list(space.base_widths))
    levels = space.levels_at_depth(depth)
    blocks = [b for b in space.blocks if b == "none" or levels]
    if not blocks:
        blocks = ["none"]
    block = trial.suggest_categorical("attention.block", blocks)
    attention = AttentionSpec()
    if block != "none":
        options = {
            option: trial.suggest_categorical(f"{block}.{option}", list(space.option_values(block, option)))
            for option in block_info(block).options
        }
        chosen = trial.suggest_categorical(f"attention.skip_levels.depth{depth}", list(level_subsets(levels)))
        attention = AttentionSpec(
            block=block,
            options=tuple(options.items()),
            placement=(("skip", tuple(int(v) for v in chosen.split(","))),),
        )
    return ArchSpec(
        spatial_dims=context.spatial_dims,
        in_channels=context.in_channels,
        out_channels=context.out_channels,
        backbone=space.backbone,
        channels=tuple(base * 2**level for level in range(depth)),
        norm=space.norm,
        attention=attention,
    )
