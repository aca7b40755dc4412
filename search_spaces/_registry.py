"""Registries that map names to attention blocks and backbones."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from torch import nn

from search_spaces._errors import SpecError, choose

OptionValue = str | int | float | bool
F = TypeVar("F", bound=Callable[..., Any])

#: Where an attention block can sit inside a backbone, in canonical order.
PLACEMENTS: tuple[str, ...] = ("skip", "encoder", "bottleneck", "decoder")

#: ``resolver(options, field_name) -> canonical options``: validation for blocks whose options
#: depend on each other (compositions).
Resolver = Callable[[Mapping[str, Any], str], dict[str, OptionValue]]
#: ``expand(options) -> (block, options)``: how a preset is spelled out.
Expander = Callable[[Mapping[str, OptionValue]], tuple[str, dict[str, OptionValue]]]


@dataclass(frozen=True)
class BlockInfo:
    """What the registry knows about an attention block.

    ``options`` maps each keyword option to its allowed values; the first value is the default.
    ``placements`` lists where the block may be placed; gating blocks (``needs_gate``) take the
    coarser decoder feature and are skip-only. A preset has an ``expand`` that spells it out as
    another block; a composition has a ``resolver`` for options that depend on each other.
    """

    name: str
    factory: Callable[..., nn.Module]
    options: Mapping[str, tuple[OptionValue, ...]] = field(default_factory=dict)
    placements: tuple[str, ...] = PLACEMENTS
    summary: str = ""
    kind: str = "transform"
    needs_gate: bool = False
    resolver: Resolver | None = None
    expand: Expander | None = None
    gate_of: Callable[[Mapping[str, OptionValue]], bool] | None = None

    def defaults(self) -> dict[str, OptionValue]:
        return {key: allowed[0] for key, allowed in self.options.items()}

    def resolve_options(self, options: Mapping[str, Any], *, field_name: str) -> dict[str, OptionValue]:
        """Fill defaults and validate ``options``; errors name ``field_name.<option>``."""
        if self.resolver is not None:
            return self.resolver(options, field_name)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise SpecError(f"{field_name}: block {self.name!r} has no option {unknown[0]!r}; its options are: {known}")
        resolved = self.defaults()
        for key, value in options.items():
            resolved[key] = choose(f"{field_name}.{key}", value, self.options[key])
        return resolved

    def uses_gate(self, options: Mapping[str, OptionValue]) -> bool:
        """Whether this block, with these (resolved) options, needs the decoder gating signal."""
        return self.gate_of(options) if self.gate_of is not None else self.needs_gate

    def placements_for(self, options: Mapping[str, OptionValue]) -> tuple[str, ...]:
        return ("skip",) if self.uses_gate(options) else self.placements


class Registry(Generic[F]):
    """A name → entry table filled by a decorator, with did-you-mean look-ups."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def add(self, name: str, entry: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def get(self, name: str, *, field_name: str | None = None) -> Any:
        choose(field_name or self.kind, name, sorted(self._entries))
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


BLOCKS: Registry[Any] = Registry("attention block")
BACKBONES: Registry[Any] = Registry("backbone")


def register_block(
    name: str,
    *,
    options: Mapping[str, tuple[OptionValue, ...]] | None = None,
    placements: tuple[str, ...] = PLACEMENTS,
    resolver: Resolver | None = None,
    gate_of: Callable[[Mapping[str, OptionValue]], bool] | None = None,
) -> Callable[[F], F]:
    """Register an attention block class under ``name``.

    The class is called as ``cls(spatial_dims, channels, **options)`` (plus ``gate_channels=`` for
    gating blocks) and must return a tensor of the input's shape. Its ``kind`` and ``needs_gate``
    class attributes are recorded.
    """

    def decorate(factory: F) -> F:
        doc = (factory.__doc__ or "").strip().splitlines()
        needs_gate = bool(getattr(factory, "needs_gate", False))
        BLOCKS.add(
            name,
            BlockInfo(
                name=name,
                factory=factory,
                options=dict(options or {}),
                placements=("skip",) if needs_gate else placements,
                summary=doc[0] if doc else "",
                kind=str(getattr(factory, "kind", "transform")),
                needs_gate=needs_gate,
                resolver=resolver,
                gate_of=gate_of,
            ),
        )
        return factory

    return decorate


def register_preset(
    name: str, *, options: Mapping[str, tuple[OptionValue, ...]], expand: Expander, summary: str
) -> None:
    """Register a named preset: a block name whose specs are spelled out as another block's."""

    def build(spatial_dims: int, channels: int, **opts: Any) -> nn.Module:
        target, target_options = expand(opts)
        info = block_info(target)
        return info.factory(spatial_dims, channels, **target_options)

    BLOCKS.add(name, BlockInfo(name=name, factory=build, options=dict(options), summary=summary, expand=expand))


def register_backbone(name: str) -> Callable[[F], F]:
    """Register a backbone class, called as ``cls(spec)`` with an ``ArchSpec``."""

    def decorate(factory: F) -> F:
        BACKBONES.add(name, factory)
        return factory

    return decorate


def block_info(name: str) -> BlockInfo:
    """The registry entry of an attention block; unknown names raise a ``SpecError``."""
    info: BlockInfo = BLOCKS.get(name, field_name="attention.block")
    return info


def block_names() -> tuple[str, ...]:
    """All registered attention block names (primitives, compositions and presets), sorted."""
    return BLOCKS.names()


def canonical_block(name: str, options: Mapping[str, Any], *, field_name: str) -> tuple[str, dict[str, OptionValue]]:
    """Validate ``options`` and spell presets out: the canonical ``(block, options)`` pair."""
    info = block_info(name)
    resolved = info.resolve_options(options, field_name=field_name)
    if info.expand is None:
        return name, resolved
    target, target_options = info.expand(resolved)
    return canonical_block(target, target_options, field_name=field_name)


def create_block(name: str, spatial_dims: int, channels: int, **options: Any) -> nn.Module:
    """Build a registered block with validated options (defaults filled in, presets spelled out).

    ``gate_channels`` (for gating blocks) is passed through untouched.
    """
    gate_channels = options.pop("gate_channels", None)
    block, resolved = canonical_block(name, options, field_name=f"block {name!r} option")
    info = block_info(block)
    extra = {"gate_channels": gate_channels} if info.uses_gate(resolved) else {}
    if info.uses_gate(resolved) and gate_channels is None:
        raise SpecError(f"block {name!r}: needs gate_channels (the coarser decoder feature's width)")
    return info.factory(spatial_dims, channels, **resolved, **extra)
