"""Declared search spaces, define-by-run sampling of ``ArchSpec``s, and counting them."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from search_spaces._errors import SpecError, choose
from search_spaces._registry import (
    BACKBONES,
    PLACEMENTS,
    OptionValue,
    block_info,
    block_names,
    canonical_block,
)
from search_spaces._spec import MAX_DEPTH, NORMS, ArchSpec, AttentionSpec
from search_spaces.blocks.compose import ARRANGEMENTS, SHORTCUTS, composable_blocks

#: How a space picks the resolution levels of a placement: any non-empty subset, or all of them.
LEVEL_CHOICES = ("subsets", "all")


class TrialLike(Protocol):
    """The part of an Optuna trial that sampling needs (so this package does not import Optuna)."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def level_subsets(levels: Sequence[int]) -> tuple[str, ...]:
    """Every non-empty subset of ``levels`` as a comma-joined string, smallest first."""
    ordered = sorted(set(levels))
    return tuple(
        ",".join(str(level) for level in combo)
        for size in range(1, len(ordered) + 1)
        for combo in itertools.combinations(ordered, size)
    )


def _placement_subsets(placements: Sequence[str]) -> tuple[str, ...]:
    ordered = [p for p in PLACEMENTS if p in placements]
    return tuple(
        "+".join(combo) for size in range(1, len(ordered) + 1) for combo in itertools.combinations(ordered, size)
    )


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


@dataclass(frozen=True)
class SearchSpace:
    """Which architectures a study may visit.

    - ``blocks``: attention blocks and presets to choose from (``none`` is "no attention";
      ``compose`` searches the ``pairs`` with the given ``arrangements`` and ``shortcuts``).
    - ``options``: per ``block.option`` the allowed values (for composition members
      ``compose.<member>.<option>``); an option not listed ranges over everything it registers.
    - ``placements``: where attention may go; the sampler picks a non-empty subset of those a
      block allows, and for each a non-empty subset of ``levels`` (the bottleneck is one level).
    - ``level_choice``: ``subsets`` (the sampler picks which of ``levels``) or ``all`` (attention at
      every one of them, as the papers' ablations place it: one architecture per mechanism).
    - ``backbones``, ``depths``, ``base_widths``: the backbone; widths double per level (``resnet34``:
      ResNet's ``base, base, 2·base, ...``, so 64 gives torchvision's 64-64-128-256-512).
    - ``deep_supervision``: the numbers of auxiliary decoder heads to choose from (``[0]``: none; a
      value is offered at a depth only where it fits, ``k ≤ depth − 2``).
    - ``extra_blocks`` at ``extra_placements``: an optional second mechanism at other sites.
    """

    blocks: tuple[str, ...] = ("none", "pwa", "sa", "joint")
    options: tuple[tuple[str, tuple[OptionValue, ...]], ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    arrangements: tuple[str, ...] = ARRANGEMENTS
    shortcuts: tuple[str, ...] = SHORTCUTS
    placements: tuple[str, ...] = ("skip",)
    levels: tuple[int, ...] | None = None
    backbones: tuple[str, ...] = ("unet",)
    depths: tuple[int, ...] = (3, 4)
    base_widths: tuple[int, ...] = (8, 16)
    norm: str = "instance"
    level_choice: str = "subsets"
    #: A second mechanism at other sites (MPU-Net: PAM at the bottleneck, gates at the skips): the
    #: sampler picks one of ``extra_blocks`` (``none``: no second mechanism) at ``extra_placements``,
    #: which must not overlap ``placements``. Options restricted in ``options`` apply to both.
    extra_blocks: tuple[str, ...] = ()
    extra_placements: tuple[str, ...] = ()
    deep_supervision: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.blocks:
            raise SpecError(f"space.blocks: must not be empty; registered blocks: {', '.join(block_names())}")
        for name in self.blocks:
            choose("space.blocks", name, block_names())
        for key, values in self.options:
            self._check_option(key, values)
        if "compose" in self.blocks and not self.pairs:
            raise SpecError("space.pairs: 'compose' is in space.blocks, so list at least one [a, b] pair")
        for pair in self.pairs:
            if len(pair) != 2:
                raise SpecError(f"space.pairs: {list(pair)!r} is not valid; expected [a, b]")
            for member in pair:
                choose("space.pairs", member, composable_blocks())
        for arrangement in self.arrangements:
            choose("space.arrangements", arrangement, ARRANGEMENTS)
        for shortcut in self.shortcuts:
            choose("space.shortcuts", shortcut, SHORTCUTS)
        if not self.arrangements or not self.shortcuts:
            raise SpecError("space.arrangements and space.shortcuts must not be empty")
        if not self.placements:
            raise SpecError(f"space.placements: must not be empty; expected some of {', '.join(PLACEMENTS)}")
        for placement in self.placements:
            choose("space.placements", placement, PLACEMENTS)
        for backbone in self.backbones or ("",):
            choose("space.backbones", backbone, BACKBONES.names())
        if not self.depths or not all(isinstance(d, int) and 2 <= d <= MAX_DEPTH for d in self.depths):
            raise SpecError(f"space.depths: {list(self.depths)!r} is not valid; expected values in 2..{MAX_DEPTH}")
        if not self.base_widths or not all(isinstance(w, int) and w >= 1 for w in self.base_widths):
            raise SpecError(f"space.base_widths: {list(self.base_widths)!r} is not valid; expected positive integers")
        for backbone in self.backbones:
            factory = BACKBONES.get(backbone)
            most = int(getattr(factory, "max_depth", MAX_DEPTH))
            if max(self.depths) > most:
                raise SpecError(
                    f"space.depths: {max(self.depths)} is not valid with backbone {backbone!r}, which has at most "
                    f"{most} levels ({getattr(factory, 'levels_note', 'its stages')})"
                )
        ds = self.deep_supervision
        if not ds or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in ds):
            raise SpecError(
                f"space.deep_supervision: {list(ds)!r} is not valid; expected a non-empty list of integers ≥ 0"
            )
        if min(ds) > min(self.depths) - 2 or max(ds) > max(self.depths) - 2:
            raise SpecError(
                f"space.deep_supervision: {list(ds)!r} is not valid with space.depths {list(self.depths)}; every "
                f"value must be at most {max(self.depths) - 2} and one at most {min(self.depths) - 2} (k ≤ depth − 2)"
            )
        object.__setattr__(self, "deep_supervision", tuple(dict.fromkeys(ds)))  # a value listed twice is one
        choose("space.norm", self.norm, NORMS)
        choose("space.level_choice", self.level_choice, LEVEL_CHOICES)
        self._check_extra()
        for name in self.blocks:
            if name not in ("none", "compose") and not any(p in block_info(name).placements for p in self.placements):
                raise SpecError(
                    f"space.blocks: {name!r} cannot be placed at any of space.placements {list(self.placements)}; "
                    f"it needs one of {list(block_info(name).placements)} (gating blocks need the skip connections)"
                )
        if "skip" not in self.placements:
            for pair in self.pairs:
                gated = [member for member in pair if _gated(member)]
                if gated:
                    raise SpecError(
                        f"space.pairs: {list(pair)!r} contains the gating block {gated[0]!r}, which needs 'skip' "
                        "in space.placements"
                    )
        if self.levels is not None and any(p != "bottleneck" for p in self.placements):
            shallowest = min(self.depths) - 1
            if not any(level < shallowest for level in self.levels):
                raise SpecError(
                    f"space.levels: {list(self.levels)!r} leaves no level for skip/encoder/decoder at depth "
                    f"{min(self.depths)} (levels 0..{shallowest - 1})"
                )

    def _check_extra(self) -> None:
        if not self.extra_blocks:
            if self.extra_placements:
                raise SpecError("space.extra_placements: set, but space.extra_blocks is empty")
            return
        if not self.extra_placements:
            raise SpecError(f"space.extra_placements: must list some of {', '.join(PLACEMENTS)} for space.extra_blocks")
        for placement in self.extra_placements:
            choose("space.extra_placements", placement, PLACEMENTS)
            if placement in self.placements:
                raise SpecError(
                    f"space.extra_placements: {placement!r} is also in space.placements; the second mechanism "
                    "goes to other sites"
                )
        for name in self.extra_blocks:
            choose("space.extra_blocks", name, [b for b in block_names() if b != "compose"])
            if name != "none" and not any(p in block_info(name).placements for p in self.extra_placements):
                raise SpecError(
                    f"space.extra_blocks: {name!r} cannot be placed at any of space.extra_placements "
                    f"{list(self.extra_placements)}; it needs one of {list(block_info(name).placements)}"
                )

    def _check_option(self, key: str, values: Sequence[OptionValue]) -> None:
        parts = key.split(".")
        if parts[0] == "compose" and len(parts) == 3:
            block, option = parts[1], parts[2]
            choose(f"space.options.{key}", block, composable_blocks())
        elif len(parts) == 2:
            block, option = parts
        else:
            raise SpecError(f"space.options.{key}: expected 'block.option' or 'compose.member.option'")
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

    # -- what the sampler offers ------------------------------------------------------------
    def option_values(self, block: str, option: str, *, prefix: str = "") -> tuple[OptionValue, ...]:
        restricted = dict(self.options).get(f"{prefix}{block}.{option}")
        return restricted if restricted is not None else block_info(block).options[option]

    def deep_supervision_at_depth(self, depth: int) -> tuple[int, ...]:
        """The numbers of auxiliary heads offered at ``depth`` (those with ``k ≤ depth − 2``)."""
        return tuple(k for k in self.deep_supervision if k <= depth - 2)

    def input_multiple(self) -> int:
        """What every spatial input size must be divisible by for every backbone and depth of the space."""
        return max(
            int(getattr(BACKBONES.get(b), "size_multiple", lambda d: 2 ** (d - 1))(d))
            for b in self.backbones
            for d in self.depths
        )

    def levels_at_depth(self, placement: str, depth: int) -> tuple[int, ...]:
        if placement == "bottleneck":
            return (depth - 1,)
        available = range(depth - 1)
        return tuple(available) if self.levels is None else tuple(lvl for lvl in available if lvl in self.levels)

    def usable_pairs(self) -> tuple[tuple[str, str], ...]:
        """Pairs that have a valid placement in this space (a gating member needs ``skip``)."""
        return tuple((a, b) for a, b in self.pairs if "skip" in self.placements or (not _gated(a) and not _gated(b)))

    def usable_extra_blocks(self) -> tuple[str, ...]:
        """The second mechanisms the sampler offers (``none`` among them when listed)."""
        return tuple(
            b
            for b in self.extra_blocks
            if b == "none" or any(p in block_info(b).placements for p in self.extra_placements)
        )

    def usable_blocks(self) -> tuple[str, ...]:
        """Blocks that have a valid placement in this space: the sampler never offers the others."""
        usable = []
        for name in self.blocks:
            if name == "compose":
                if self.usable_pairs():
                    usable.append(name)
            elif name == "none" or any(p in block_info(name).placements for p in self.placements):
                usable.append(name)
        if not usable:
            raise SpecError("space: no block in space.blocks can be placed at space.placements")
        return tuple(usable)

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": list(self.blocks),
            "options": {key: list(values) for key, values in self.options},
            "pairs": [list(pair) for pair in self.pairs],
            "arrangements": list(self.arrangements),
            "shortcuts": list(self.shortcuts),
            "placements": list(self.placements),
            "levels": None if self.levels is None else list(self.levels),
            "backbones": list(self.backbones),
            "depths": list(self.depths),
            "base_widths": list(self.base_widths),
            "norm": self.norm,
            "level_choice": self.level_choice,
            "extra_blocks": list(self.extra_blocks),
            "extra_placements": list(self.extra_placements),
            "deep_supervision": list(self.deep_supervision),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        known = tuple(cls.__dataclass_fields__)
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SpecError(f"space.{unknown[0]}: unknown field; expected fields: {', '.join(known)}")
        kwargs: dict[str, Any] = dict(data)
        for key in (
            "blocks",
            "arrangements",
            "shortcuts",
            "placements",
            "backbones",
            "depths",
            "base_widths",
            "extra_blocks",
            "extra_placements",
            "deep_supervision",
        ):
            if key in kwargs:
                kwargs[key] = _tuple(kwargs[key])
        if kwargs.get("levels") is not None:
            kwargs["levels"] = _tuple(kwargs["levels"])
        if "pairs" in kwargs:
            kwargs["pairs"] = tuple(tuple(pair) for pair in kwargs["pairs"])
        if "options" in kwargs:
            if not isinstance(kwargs["options"], Mapping):
                raise SpecError("space.options: expected an object of 'block.option': [values]")
            kwargs["options"] = tuple((k, _tuple(v)) for k, v in kwargs["options"].items())
        return cls(**kwargs)

    @classmethod
    def widest(cls) -> SearchSpace:
        """Every registered block and preset, every pair, arrangement, shortcut, placement and backbone."""
        members = composable_blocks()
        return cls(
            blocks=block_names(),
            pairs=tuple(itertools.product(members, members)),
            placements=PLACEMENTS,
            backbones=BACKBONES.names(),
        )


def _gated(block: str) -> bool:
    return block_info(block).needs_gate


@dataclass(frozen=True)
class SampleContext:
    """What a sampled spec inherits from the study rather than from the space."""

    spatial_dims: int = 2
    in_channels: int = 1
    out_channels: int = 2


def _sample_options(trial: TrialLike, space: SearchSpace, block: str, *, prefix: str) -> dict[str, OptionValue]:
    return {
        option: trial.suggest_categorical(
            f"{prefix}{block}.{option}", list(space.option_values(block, option, prefix=prefix))
        )
        for option in block_info(block).options
    }


def sample_spec(trial: TrialLike, space: SearchSpace | None = None, context: SampleContext | None = None) -> ArchSpec:
    """Sample one architecture define-by-run; parameter names are stable across trials.

    Only ``suggest_categorical`` is used, so samplers see the space as it is declared. Blocks and
    pairs without a valid placement in the space are never offered, and placements are offered
    only where the sampled block is allowed, so every sampled point is a valid spec.
    """
    space = space or SearchSpace()
    context = context or SampleContext()
    backbone = trial.suggest_categorical("backbone", list(space.backbones))
    depth = trial.suggest_categorical("backbone.depth", list(space.depths))
    base = trial.suggest_categorical("backbone.base_width", list(space.base_widths))
    block = trial.suggest_categorical("attention.block", list(space.usable_blocks()))
    attention = AttentionSpec()
    if block != "none":
        if block == "compose":
            pair = trial.suggest_categorical("compose.pair", ["+".join(p) for p in space.usable_pairs()])
            a, b = pair.split("+")
            options: dict[str, OptionValue] = {
                "a": a,
                "b": b,
                "arrangement": trial.suggest_categorical("compose.arrangement", list(space.arrangements)),
                "shortcut": trial.suggest_categorical("compose.shortcut", list(space.shortcuts)),
            }
            for role, member in (("a", a), ("b", b)):
                for key, value in _sample_options(trial, space, member, prefix="compose.").items():
                    options[f"{role}.{key}"] = value
        else:
            options = _sample_options(trial, space, block, prefix="")
        canonical, resolved = canonical_block(block, options, field_name="attention.options")
        allowed = [p for p in block_info(canonical).placements_for(resolved) if p in space.placements]
        placement = _sample_sites(trial, space, allowed, depth, "attention")
        attention = AttentionSpec(block=block, options=tuple(options.items()), placement=placement)
    extra: tuple[AttentionSpec, ...] = ()
    if space.extra_blocks:
        second = trial.suggest_categorical("extra.block", list(space.usable_extra_blocks()))
        if second != "none":
            second_options = {
                option: trial.suggest_categorical(f"extra.{second}.{option}", list(space.option_values(second, option)))
                for option in block_info(second).options
            }
            canonical, resolved = canonical_block(second, second_options, field_name="extra_attention.options")
            allowed = [p for p in block_info(canonical).placements_for(resolved) if p in space.extra_placements]
            sites = _sample_sites(trial, space, allowed, depth, "extra")
            extra = (AttentionSpec(block=second, options=tuple(second_options.items()), placement=sites),)
    supervised = space.deep_supervision_at_depth(depth)
    heads = (
        supervised[0]
        if len(supervised) == 1  # a fixed value is no parameter: the params of existing studies stay as they were
        else trial.suggest_categorical(f"deep_supervision.depth{depth}", list(supervised))
    )
    return ArchSpec(
        spatial_dims=context.spatial_dims,
        in_channels=context.in_channels,
        out_channels=context.out_channels,
        backbone=backbone,
        channels=_widths(backbone, base, depth),
        norm=space.norm,
        attention=attention,
        extra_attention=extra,
        deep_supervision=heads,
    )


def _widths(backbone: str, base: int, depth: int) -> tuple[int, ...]:
    """The backbone's level widths for a base width (doubling per level unless it says otherwise)."""
    factory = BACKBONES.get(backbone, field_name="backbone")
    widths = getattr(factory, "level_widths", None)
    return tuple(widths(base, depth)) if widths is not None else tuple(base * 2**level for level in range(depth))


def _sample_sites(
    trial: TrialLike, space: SearchSpace, allowed: Sequence[str], depth: int, prefix: str
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A non-empty subset of the ``allowed`` placements, and for each its levels."""
    chosen = trial.suggest_categorical(f"{prefix}.placements.{'+'.join(allowed)}", list(_placement_subsets(allowed)))
    placement = []
    for name in chosen.split("+"):
        levels = space.levels_at_depth(name, depth)
        if name != "bottleneck" and space.level_choice == "subsets":
            picked = trial.suggest_categorical(f"{prefix}.{name}_levels.depth{depth}", list(level_subsets(levels)))
            levels = tuple(int(v) for v in picked.split(","))
        placement.append((name, levels))
    return tuple(placement)


def _option_grid(space: SearchSpace, block: str, prefix: str) -> Iterator[dict[str, OptionValue]]:
    options = block_info(block).options
    keys = list(options)
    for values in itertools.product(*(space.option_values(block, k, prefix=prefix) for k in keys)):
        yield dict(zip(keys, values, strict=True))


def distinct_mechanisms(space: SearchSpace) -> list[tuple[str, tuple[tuple[str, OptionValue], ...]]]:
    """Every distinct attention mechanism (canonical block + options) the space can produce."""
    seen: dict[tuple[str, tuple[tuple[str, OptionValue], ...]], None] = {}
    for block in space.usable_blocks():
        if block == "none":
            continue
        if block == "compose":
            for a, b in space.usable_pairs():
                for arrangement, shortcut in itertools.product(space.arrangements, space.shortcuts):
                    for oa, ob in itertools.product(
                        _option_grid(space, a, "compose."), _option_grid(space, b, "compose.")
                    ):
                        options: dict[str, OptionValue] = {
                            "a": a,
                            "b": b,
                            "arrangement": arrangement,
                            "shortcut": shortcut,
                        }
                        options.update({f"a.{k}": v for k, v in oa.items()})
                        options.update({f"b.{k}": v for k, v in ob.items()})
                        name, resolved = canonical_block("compose", options, field_name="space")
                        seen[(name, tuple(sorted(resolved.items())))] = None
        else:
            for options in _option_grid(space, block, ""):
                name, resolved = canonical_block(block, options, field_name="space")
                seen[(name, tuple(sorted(resolved.items())))] = None
    return list(seen)


def _site_ways(
    space: SearchSpace, name: str, options: Mapping[str, OptionValue], within: Sequence[str], depth: int
) -> int:
    """How many ways a mechanism can be placed at the ``within`` placements (none placed: excluded)."""
    allowed = [p for p in block_info(name).placements_for(dict(options)) if p in within]
    ways = math.prod(
        1 + (2 ** len(space.levels_at_depth(p, depth)) - 1 if space.level_choice == "subsets" else 1) for p in allowed
    )
    return ways - 1


def _extra_mechanisms(space: SearchSpace) -> list[tuple[str, tuple[tuple[str, OptionValue], ...]]]:
    seen: dict[tuple[str, tuple[tuple[str, OptionValue], ...]], None] = {}
    for block in space.usable_extra_blocks():
        if block != "none":
            for options in _option_grid(space, block, ""):
                name, resolved = canonical_block(block, options, field_name="space")
                seen[(name, tuple(sorted(resolved.items())))] = None
    return list(seen)


def count_architectures(space: SearchSpace) -> int:
    """The number of distinct ``ArchSpec``s in ``space`` (specs that hash equal are counted once)."""
    mechanisms = distinct_mechanisms(space)
    extras = _extra_mechanisms(space)
    total = 0
    for depth in space.depths:
        per_backbone = 1 if "none" in space.usable_blocks() else 0
        for name, options in mechanisms:
            per_backbone += _site_ways(space, name, dict(options), space.placements, depth)
        second = 1
        if space.extra_blocks:
            second = (1 if "none" in space.usable_extra_blocks() else 0) + sum(
                _site_ways(space, name, dict(options), space.extra_placements, depth) for name, options in extras
            )
        heads = len(space.deep_supervision_at_depth(depth))
        total += per_backbone * second * heads * len(space.backbones) * len(space.base_widths)
    return total


class _Replay:
    """A ``TrialLike`` that answers each choice by a ``pick(name, choices)`` function and records it."""

    def __init__(self, pick: Any) -> None:
        self.pick = pick
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self.pick(name, list(choices))
        self.params[name] = value
        return value


def replay_spec(
    space: SearchSpace, context: SampleContext | None, pick: Callable[[str, list[Any]], Any]
) -> tuple[dict[str, Any], ArchSpec]:
    """The spec ``sample_spec`` builds when each choice is answered by ``pick(name, choices)``, and
    the parameters it asked for (what a sampler would suggest to get that spec)."""
    replay = _Replay(pick)
    spec = sample_spec(replay, space, context)
    return replay.params, spec


def enumerate_specs(
    space: SearchSpace, context: SampleContext | None = None, *, limit: int = 10_000
) -> list[tuple[dict[str, Any], ArchSpec]]:
    """Every distinct spec of ``space`` with the parameters that make ``sample_spec`` produce it.

    Walks ``sample_spec``'s choice tree depth-first, so the parameters are exactly what a sampler
    would suggest (an exhaustive grid is these, enqueued). Specs that hash equal are listed once.
    More than ``limit`` distinct specs is refused: a grid that size is not an ablation.
    """
    total = count_architectures(space)
    if total > limit:
        raise SpecError(
            f"space: {total} distinct architectures, more than the {limit} an exhaustive grid allows; "
            "narrow space.blocks, options, placements, levels, depths or base_widths"
        )
    found: dict[str, tuple[dict[str, Any], ArchSpec]] = {}
    stack: list[list[int]] = [[]]  # choice-index prefixes still to walk
    while stack:
        prefix = stack.pop()
        fanout: list[int] = []

        def pick(name: str, choices: list[Any], prefix: list[int] = prefix, fanout: list[int] = fanout) -> Any:
            depth = len(fanout)
            fanout.append(len(choices))
            return choices[prefix[depth] if depth < len(prefix) else 0]

        replay = _Replay(pick)
        spec = sample_spec(replay, space, context)
        # Every choice made past the prefix took option 0: queue its siblings.
        for depth in range(len(fanout) - 1, len(prefix) - 1, -1):
            chosen = [*prefix, *([0] * (depth - len(prefix)))]
            for option in range(fanout[depth] - 1, 0, -1):
                stack.append([*chosen, option])
        found.setdefault(spec.spec_hash(), (replay.params, spec))
    return sorted(found.values(), key=lambda item: _sort_key(item[1]))


def _sort_key(spec: ArchSpec) -> tuple[Any, ...]:
    return (spec.attention.block != "none", spec.attention.block, spec.backbone, spec.channels, spec.spec_hash())


def baseline_params(space: SearchSpace, block: str, context: SampleContext | None = None) -> dict[str, Any] | None:
    """The parameters of ``block``'s reference point in ``space``, or None if the space cannot hold it.

    The reference is the block with its first listed options on the space's first backbone, depth and
    width, at every placement and level the space allows it (the papers' baselines put the module at
    every skip connection).
    """
    if block not in space.usable_blocks():
        return None

    def pick(name: str, choices: list[Any]) -> Any:
        if name == "attention.block":
            return block
        if name.startswith("attention."):  # placements and levels: subsets listed smallest first
            return choices[-1]
        return choices[0]

    replay = _Replay(pick)
    sample_spec(replay, space, context)
    return replay.params
