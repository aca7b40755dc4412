"""``ArchSpec``: a candidate network as plain, hashable, versioned data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from search_spaces._errors import SpecError, choose
from search_spaces._registry import BACKBONES, PLACEMENTS, OptionValue, block_info, canonical_block

SCHEMA_VERSION = 1
NORMS = ("instance", "batch")
MAX_DEPTH = 6
#: The widest level a spec may have: 4096 channels (a 3x3 convolution of 4096 to 4096 is 604 MB of
#: float32 weights); wider levels are refused before anything is allocated.
MAX_WIDTH = 4096


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_schema_version(version: object) -> None:
    if not _is_int(version):
        raise SpecError(
            f"schema_version: {version!r} is not valid; expected the integer {SCHEMA_VERSION} (a JSON number, "
            "not a string)"
        )
    if version != SCHEMA_VERSION:
        raise SpecError(f"schema_version: {version!r} is not supported; this version reads {SCHEMA_VERSION}")


def _check_keys(where: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown field; expected fields: {', '.join(allowed)}")


@dataclass(frozen=True)
class AttentionSpec:
    """Which attention block, with which options, at which sites of the backbone.

    ``placement`` maps a placement name (``skip``, ...) to the resolution levels it applies at
    (0 = full resolution). Options are canonicalised: defaults are filled in and the pairs
    sorted, so two specs that build the same network compare and hash equal.
    """

    block: str = "none"
    options: tuple[tuple[str, OptionValue], ...] = ()
    placement: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        block, resolved = canonical_block(self.block, dict(self.options), field_name="attention.options")
        info = block_info(block)
        object.__setattr__(self, "block", block)
        object.__setattr__(self, "options", tuple(sorted(resolved.items())))
        if self.block == "none":
            if any(levels for _, levels in self.placement):
                raise SpecError("attention.placement: block 'none' takes no placement; leave it empty or pick a block")
            object.__setattr__(self, "placement", ())
            return
        allowed = info.placements_for(resolved)
        if not self.placement:
            raise SpecError(
                f"attention.placement: block {self.block!r} needs at least one placement, "
                f"e.g. {{'skip': [0]}}; placements: {', '.join(allowed)}"
            )
        canonical: dict[str, tuple[int, ...]] = {}
        for name, levels in self.placement:
            choose("attention.placement", name, PLACEMENTS)
            if name not in allowed:
                raise SpecError(
                    f"attention.placement: {name!r} is not valid for block {self.block!r}: it needs the "
                    "coarser decoder feature as gating signal, which exists only at skip connections; "
                    f"expected one of {', '.join(repr(p) for p in allowed)}"
                )
            if name in canonical:
                raise SpecError(f"attention.placement.{name}: given twice")
            if not levels or not all(_is_int(level) and level >= 0 for level in levels):
                raise SpecError(
                    f"attention.placement.{name}: {list(levels)!r} is not valid; "
                    "expected a non-empty list of levels (integers ≥ 0, 0 = full resolution)"
                )
            canonical[name] = tuple(sorted(set(levels)))
        ordered = tuple((name, canonical[name]) for name in PLACEMENTS if name in canonical)
        object.__setattr__(self, "placement", ordered)

    def option(self, name: str) -> OptionValue:
        return dict(self.options)[name]

    def levels(self, placement: str) -> tuple[int, ...]:
        """The levels at which the block sits for ``placement`` (empty if it is not placed there)."""
        return dict(self.placement).get(placement, ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "options": dict(self.options),
            "placement": {name: list(levels) for name, levels in self.placement},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttentionSpec:
        _check_keys("attention", data, ("block", "options", "placement"))
        options = data.get("options", {})
        placement = data.get("placement", {})
        if not isinstance(options, Mapping):
            raise SpecError(f"attention.options: expected a JSON object, got {options!r}")
        if not isinstance(placement, Mapping):
            raise SpecError(f"attention.placement: expected an object like {{'skip': [0, 1]}}, got {placement!r}")
        for name, levels in placement.items():
            if not isinstance(levels, list | tuple):
                raise SpecError(f"attention.placement.{name}: expected a list of levels, got {levels!r}")
        return cls(
            block=data.get("block", "none"),
            options=tuple(options.items()),
            placement=tuple((name, tuple(levels)) for name, levels in placement.items()),
        )


@dataclass(frozen=True)
class ArchSpec:
    """A complete candidate architecture, from which ``build_model`` builds the network.

    ``channels`` gives the width of each resolution level, so its length is the depth; the last
    level is the bottleneck and levels ``0 .. depth-2`` have skip connections. Input sizes must be
    divisible by ``2 ** (depth - 1)`` (``2 ** depth`` for ``resnet34``, whose stem halves the input
    before level 0: its level ``l`` is at ``1 / 2**(l + 1)`` resolution).
    """

    spatial_dims: int = 2
    in_channels: int = 1
    out_channels: int = 2
    backbone: str = "unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    norm: str = "instance"
    attention: AttentionSpec = field(default_factory=AttentionSpec)
    #: Further mechanisms at other sites (MPU-Net: PAM at the bottleneck and attention gates at the
    #: skips). No site may hold two blocks. Omitted from the JSON when empty, so the hashes of
    #: single-mechanism specs do not change.
    extra_attention: tuple[AttentionSpec, ...] = ()
    #: Deep supervision (MPU-Net eq. 18-19, nnU-Net): auxiliary 1x1 heads on the ``k`` decoder levels
    #: just above the final head, at 1/2, 1/4, ... resolution; in training mode the network returns
    #: ``(main, aux_1, ..., aux_k)``. Omitted from the JSON when 0, so existing hashes do not change.
    deep_supervision: int = 0
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check_schema_version(self.schema_version)
        choose("spatial_dims", self.spatial_dims, (2, 3))
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise SpecError(f"{name}: {value!r} is not valid; expected a positive integer")
        choose("backbone", self.backbone, BACKBONES.names())
        chans = tuple(self.channels) if isinstance(self.channels, list | tuple) else None
        if not chans or not 2 <= len(chans) <= MAX_DEPTH or not all(_is_int(c) and c >= 1 for c in chans):
            raise SpecError(
                f"channels: {self.channels!r} is not valid; expected 2 to {MAX_DEPTH} positive integers, "
                "one width per resolution level"
            )
        if max(chans) > MAX_WIDTH:
            raise SpecError(
                f"channels: {max(chans)} is wider than {MAX_WIDTH}, the widest level a spec may have "
                f"(got {list(chans)}); choose widths of at most {MAX_WIDTH}"
            )
        object.__setattr__(self, "channels", chans)
        backbone = BACKBONES.get(self.backbone)
        most = int(getattr(backbone, "max_depth", MAX_DEPTH))
        if len(chans) > most:
            raise SpecError(
                f"channels: backbone {self.backbone!r} has at most {most} levels "
                f"({getattr(backbone, 'levels_note', 'its stages')}), got {len(chans)}"
            )
        top = len(chans) - 2
        if not _is_int(self.deep_supervision) or not 0 <= self.deep_supervision <= top:
            raise SpecError(
                f"deep_supervision: {self.deep_supervision!r} is not valid; expected an integer in 0..{top} "
                f"(auxiliary heads on decoder levels 1..{top} of a {len(chans)}-level backbone)"
            )
        choose("norm", self.norm, NORMS)
        if not isinstance(self.attention, AttentionSpec):
            raise SpecError("attention: expected an AttentionSpec")
        extra = tuple(self.extra_attention)
        if not all(isinstance(a, AttentionSpec) and a.block != "none" for a in extra):
            raise SpecError("extra_attention: expected a list of attention specs other than 'none'")
        object.__setattr__(self, "extra_attention", extra)
        taken: dict[tuple[str, int], str] = {}
        for index, att in enumerate((self.attention, *extra)):
            where = "attention" if index == 0 else f"extra_attention.{index - 1}"
            for placement, levels in att.placement:
                valid = self.levels_for(placement)
                bad = [level for level in levels if level not in valid]
                if bad:
                    raise SpecError(
                        f"{where}.placement.{placement}: level {bad[0]} does not exist; with {self.depth} levels "
                        f"the {placement} levels are {list(valid)}"
                    )
                for level in levels:
                    if (placement, level) in taken:
                        raise SpecError(
                            f"{where}.placement.{placement}: level {level} already holds {taken[placement, level]}; "
                            "a site takes one block"
                        )
                    taken[placement, level] = f"{where} ({att.block})"

    @property
    def mechanisms(self) -> tuple[AttentionSpec, ...]:
        """Every attention mechanism of the network: ``attention`` and then ``extra_attention``."""
        return (self.attention, *self.extra_attention)

    @property
    def depth(self) -> int:
        return len(self.channels)

    @property
    def skip_levels(self) -> tuple[int, ...]:
        return tuple(range(self.depth - 1))

    def levels_for(self, placement: str) -> tuple[int, ...]:
        """The levels that exist for ``placement``: the bottleneck is the one deepest level. A backbone
        whose deepest stage has an inside (``resnet34``: attention inside its last residual block) also
        offers ``encoder`` there."""
        if placement == "bottleneck":
            return (self.depth - 1,)
        if placement == "encoder" and getattr(BACKBONES.get(self.backbone), "encoder_site_at_bottleneck", False):
            return tuple(range(self.depth))
        return self.skip_levels

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "backbone": self.backbone,
            "channels": list(self.channels),
            "norm": self.norm,
            "attention": self.attention.to_dict(),
            **({"extra_attention": [a.to_dict() for a in self.extra_attention]} if self.extra_attention else {}),
            **({"deep_supervision": self.deep_supervision} if self.deep_supervision else {}),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def spec_hash(self) -> str:
        """A stable SHA-256 over the canonical JSON: equal specs hash equal across runs and machines."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def short_label(self) -> str:
        """A one-line human summary, e.g. ``joint(parallel,inside,dot)@skip[0,1] unet 16-32-64``."""
        where = " + ".join([_mechanism_label(a) for a in self.mechanisms if a.block != "none"] or ["none"])
        widths = "-".join(str(c) for c in self.channels)
        supervised = f" ds{self.deep_supervision}" if self.deep_supervision else ""
        return f"{where} {self.backbone} {widths}{supervised}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        allowed = tuple(f.name for f in fields(cls))
        _check_keys("spec", data, allowed)
        _check_schema_version(data.get("schema_version", SCHEMA_VERSION))
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k not in ("attention", "extra_attention")}
        if "channels" in kwargs and isinstance(kwargs["channels"], list):
            kwargs["channels"] = tuple(kwargs["channels"])
        if "attention" in data:
            kwargs["attention"] = AttentionSpec.from_dict(data["attention"])
        extra = data.get("extra_attention", [])
        if not isinstance(extra, list | tuple):
            raise SpecError(f"extra_attention: expected a list of attention objects, got {extra!r}")
        kwargs["extra_attention"] = tuple(AttentionSpec.from_dict(a) for a in extra)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec: not valid JSON ({exc})") from None
        return cls.from_dict(data)


def _mechanism_label(att: AttentionSpec) -> str:
    if att.block == "none":
        return "none"
    opts = ",".join(str(v) for _, v in att.options)
    if att.block == "compose":
        o = dict(att.options)
        link = {"parallel": "∥", "a_first": "→", "b_first": "←"}[str(o["arrangement"])]
        members = ",".join(f"{k}={v}" for k, v in att.options if k[:2] in ("a.", "b."))
        opts = f"{o['a']}{link}{o['b']},{o['shortcut']}" + (f",{members}" if members else "")
    sites = " ".join(f"{name}{list(levels)}".replace(" ", "") for name, levels in att.placement)
    return f"{att.block}({opts})@{sites}" if opts else f"{att.block}@{sites}"
