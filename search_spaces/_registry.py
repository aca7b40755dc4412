"""Registries that map names to building blocks and backbones."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from torch import nn

from search_spaces._errors import SpecError, choose

OptionValue = str | int | float | bool
F = TypeVar("F", bound=Callable[..., Any])

#: Where an attention block can sit inside a backbone.
PLACEMENTS: tuple[str, ...] = ("skip",)


@dataclass(frozen=True)
class BlockInfo:
    """What the registry knows about an attention block.

    ``options`` maps each keyword option to its allowed values; the first value is the default.
    ``placements`` lists where the block may be placed (``skip``, ...).
    """

    name: str
    factory: Callable[..., nn.Module]
    options: Mapping[str, tuple[OptionValue, ...]] = field(default_factory=dict)
    placements: tuple[str, ...] = PLACEMENTS
    summary: str = ""

    def defaults(self) -> dict[str, OptionValue]:
        return {key: allowed[0] for key, allowed in self.options.items()}

    def resolve_options(self, options: Mapping[str, Any], *, field_name: str) -> dict[str, OptionValue]:
        """Fill defaults and validate ``options``; errors name ``field_name.<option>``."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise SpecError(
                f"{field_name}: block {self.name!r} has no option {unknown[0]!r}; its options are: {known}"
            )
        resolved = self.defaults()
        for key, value in options.items():
            resolved[key] = choose(f"{field_name}.{key}", value, self.options[key])
        return resolved


class Registry(Generic[F]):
    """A name → factory table filled by a decorator, with did-you-mean look-ups."""

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
) -> Callable[[F], F]:
    """Register an attention block class under ``name``.

    The class is called as ``cls(spatial_dims, channels, **options)`` and must return a tensor of
    the input's shape.
    """

    def decorate(factory: F) -> F:
        doc = (factory.__doc__ or "").strip().splitlines()
        BLOCKS.add(
            name,
            BlockInfo(
                name=name,
                factory=factory,
                options=dict(options or {}),
                placements=placements,
                summary=doc[0] if doc else "",
            ),
        )
        return factory

    return decorate


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
    """All registered attention block names, sorted."""
    return BLOCKS.names()


def create_block(name: str, spatial_dims: int, channels: int, **options: Any) -> nn.Module:
    """Build a registered block with validated options (defaults filled in)."""
    info = block_info(name)
    resolved = info.resolve_options(options, field_name=f"block {name!r} option")
    return info.factory(spatial_dims, channels, **resolved)
