"""Squeeze-and-excitation channel attention (Hu et al.; the review's §2.2)."""

from __future__ import annotations

import torch

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import channel_mlp, check_geometry, global_avg

REDUCTIONS = (16, 8, 4)


@register_block("se", options={"reduction": REDUCTIONS})
class SqueezeExcitation(Mechanism):
    """SE: ``σ(FC(ReLU(FC(GAP(x))))) ⊙ x``, channel weights from global context.

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "gate"

    def __init__(self, spatial_dims: int, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        check_geometry("se", spatial_dims, channels)
        self.fc = channel_mlp(spatial_dims, channels, reduction)

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.fc(global_avg(context)))
