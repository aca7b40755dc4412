"""What every attention primitive offers, so that any two can be composed."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from search_spaces._errors import SpecError

KINDS = ("gate", "residual", "transform")


class Mechanism(nn.Module):
    """Base class of the attention primitives.

    Every primitive maps ``(B, C, *spatial)`` to the same shape through ``forward(x, gate=None)``
    (``gate`` is the coarser decoder feature that gating blocks need) and is one of three kinds:

    - ``gate``: ``P(x) = G(x) ⊙ x`` for a map ``G`` (spatial, channel or both); subclasses
      implement ``gate_map``.
    - ``residual``: ``P(x) = x + R(x)``; subclasses implement ``response``.
    - ``transform``: any same-shape map; subclasses implement ``transform`` and ``response`` is
      ``P(x) − x``.

    Composition uses two derived views: ``response(x) = P(x) − x`` (the mechanism without its
    identity) and ``modulate(y, c)``: the mechanism computed from ``c`` applied to ``y``
    (``G(c) ⊙ y`` for gates, ``y + R(c)`` otherwise), so that ``P(x) = modulate(x, x)``.
    """

    kind: ClassVar[str] = "transform"
    needs_gate: ClassVar[bool] = False

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        self._check_gate(gate)
        if self.kind == "gate":
            return self.gate_map(x, gate) * x
        if self.kind == "residual":
            return x + self.response(x, gate)
        return self.transform(x, gate)

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is not a gate")

    def transform(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define transform")

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """``P(x) − x``: what the mechanism adds to its input."""
        return self.forward(x, gate) - x

    def modulate(self, y: torch.Tensor, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """The mechanism computed from ``context``, applied to ``y``."""
        if self.kind == "gate":
            return self.gate_map(context, gate) * y
        return y + self.response(context, gate)

    def _check_gate(self, gate: torch.Tensor | None) -> None:
        if self.needs_gate and gate is None:
            raise ValueError(
                f"{type(self).__name__} needs the coarser decoder feature as gating signal; "
                "it can only be placed at skip connections"
            )


def check_gate_channels(block: str, gate_channels: object) -> int:
    """Validate the ``gate_channels`` argument of a gating block."""
    if not isinstance(gate_channels, int) or isinstance(gate_channels, bool) or gate_channels < 1:
        raise SpecError(f"{block}: gate_channels={gate_channels!r} is not valid; expected a positive integer")
    return gate_channels
