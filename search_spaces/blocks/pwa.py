"""Point-wise attention (PWA), joint-attention paper eq. 4."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, conv


class PointwiseMap(nn.Module):
    """The PWA gate ``M(x) = σ(conv3x3(x))``: one channel, broadcast over the input's channels.

    Input ``(B, C, *spatial)``; output ``(B, 1, *spatial)`` in (0, 1).
    """

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("pwa", spatial_dims, channels)
        self.conv = conv(spatial_dims, channels, 1, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


@register_block("pwa")
class PointwiseAttention(Mechanism):
    """Point-wise attention, ``PWA(x) = M(x) ⊙ x`` (Joint attention, DenseUNet-JA, eq. 4).

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "gate"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        self.map = PointwiseMap(spatial_dims, channels)

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return self.map(context)
