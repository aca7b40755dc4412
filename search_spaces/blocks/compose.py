"""Composition of two attention primitives, generalising the joint-attention table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch

from search_spaces._errors import SpecError, choose
from search_spaces._registry import BLOCKS, OptionValue, block_info, register_block
from search_spaces.blocks._base import Mechanism

ARRANGEMENTS = ("parallel", "a_first", "b_first")
SHORTCUTS = ("inside", "outside", "separate", "none")
COMPOSITION_OPTIONS = ("a", "b", "arrangement", "shortcut")


def composable_blocks() -> tuple[str, ...]:
    """The primitives a composition may pair: every registered block but ``none``, compositions and presets."""
    return tuple(
        name
        for name in BLOCKS.names()
        if name != "none" and block_info(name).expand is None and block_info(name).resolver is None
    )


def _member_options(role: str, block: str, options: Mapping[str, Any], field_name: str) -> dict[str, OptionValue]:
    prefix = f"{role}."
    mine = {key[len(prefix) :]: value for key, value in options.items() if key.startswith(prefix)}
    resolved = block_info(block).resolve_options(mine, field_name=f"{field_name}.{role}")
    return {prefix + key: value for key, value in resolved.items()}


def resolve_composition(options: Mapping[str, Any], field_name: str) -> dict[str, OptionValue]:
    """Validate and canonicalise composition options.

    Two spellings that compute the same function are folded into one, so that they share a spec
    hash: a serial composition with shortcut ``none`` is plain chaining, the same as ``inside``;
    a parallel ``outside`` composition whose first member is not a gate adds both responses to
    ``x``, the same as ``inside``.
    """
    for key in options:
        if key not in COMPOSITION_OPTIONS and not key.startswith(("a.", "b.")):
            raise SpecError(
                f"{field_name}: composition has no option {key!r}; its options are "
                f"{', '.join(COMPOSITION_OPTIONS)} and a.<option> / b.<option> for the members"
            )
    for role in ("a", "b"):
        if role not in options:
            raise SpecError(
                f"{field_name}.{role}: a composition needs two primitives; "
                f"expected one of {', '.join(composable_blocks())}"
            )
    a = choose(f"{field_name}.a", options["a"], composable_blocks())
    b = choose(f"{field_name}.b", options["b"], composable_blocks())
    arrangement = choose(f"{field_name}.arrangement", options.get("arrangement", "parallel"), ARRANGEMENTS)
    shortcut = choose(f"{field_name}.shortcut", options.get("shortcut", "inside"), SHORTCUTS)
    if arrangement != "parallel" and shortcut == "none":
        shortcut = "inside"
    if arrangement == "parallel" and shortcut == "outside" and block_info(a).kind != "gate":
        shortcut = "inside"
    resolved: dict[str, OptionValue] = {"a": a, "b": b, "arrangement": arrangement, "shortcut": shortcut}
    resolved.update(_member_options("a", a, options, field_name))
    resolved.update(_member_options("b", b, options, field_name))
    return resolved


def composition_uses_gate(options: Mapping[str, OptionValue]) -> bool:
    return any(block_info(str(options[role])).needs_gate for role in ("a", "b"))


@register_block("compose", resolver=resolve_composition, gate_of=composition_uses_gate)
class Composition(Mechanism):
    """Two primitives A and B composed by ``arrangement`` and ``shortcut``.

    With ``P°(x) = P(x) − x`` (a mechanism without its identity) and ``A_c(y)`` (A computed from
    ``c`` applied to ``y``: ``M_A(c) ⊙ y`` for gates, ``y + A°(c)`` otherwise), the shortcut
    always concerns A, as PWA's does in the joint-attention table:

    ========= =========== =========================== ==========================
    shortcut  a_first     b_first                     parallel
    ========= =========== =========================== ==========================
    inside    B(A(x))     A(B(x))                     A_x(B(x))
    outside   x + B°(A(x)) x + A(B°(x))               x + A_x(B°(x))
    separate  B(x + A(x)) B(x) + A(B(x))              B(x) + A_x(B(x))
    none      = inside    = inside                    A(x) + B(x)
    ========= =========== =========================== ==========================

    With A = pwa and B = sa these are exactly the nine joint-attention variants (b_first is the
    paper's "SA first"). Gating members receive the decoder's gating signal.
    Input ``(B, C, *spatial)``; output of the same shape.
    """

    kind = "transform"

    def __init__(self, spatial_dims: int, channels: int, **options: Any) -> None:
        super().__init__()
        gate_channels = options.pop("gate_channels", None)
        resolved = resolve_composition(options, "compose")
        self.arrangement = str(resolved["arrangement"])
        self.shortcut = str(resolved["shortcut"])
        self.needs_gate = composition_uses_gate(resolved)  # type: ignore[misc]
        members = []
        for role in ("a", "b"):
            info = block_info(str(resolved[role]))
            member_options = {k[2:]: v for k, v in resolved.items() if k.startswith(role + ".")}
            extra = {"gate_channels": gate_channels} if info.needs_gate else {}
            if info.needs_gate and gate_channels is None:
                raise SpecError(f"compose: member {info.name!r} needs gate_channels")
            members.append(info.factory(spatial_dims, channels, **member_options, **extra))
        self.a: Mechanism = cast(Mechanism, members[0])
        self.b: Mechanism = cast(Mechanism, members[1])

    def transform(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        a, b = self.a, self.b
        if self.arrangement == "a_first":
            if self.shortcut == "outside":
                return x + b.response(a(x, gate), gate)
            first = x + a(x, gate) if self.shortcut == "separate" else a(x, gate)
            return b(first, gate)
        if self.arrangement == "b_first":
            if self.shortcut == "outside":
                return x + a(b.response(x, gate), gate)
            z = b(x, gate)
            return z + a(z, gate) if self.shortcut == "separate" else a(z, gate)
        if self.shortcut == "none":
            return a(x, gate) + b(x, gate)
        if self.shortcut == "outside":
            return x + a.modulate(b.response(x, gate), x, gate)
        z = b(x, gate)
        modulated = a.modulate(z, x, gate)
        return z + modulated if self.shortcut == "separate" else modulated
