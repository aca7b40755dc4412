"""Feature-space attention module (bilateral spatial attention paper §3)."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, conv, global_avg, global_max


@register_block("fsam")
class FeatureSpaceAttention(Mechanism):
    """FSAM: ``c = Conv(x)``, ``f = DConv(c)`` (dilation 2), ``α = σ(FC(GAP(f)) + FC(GMP(f)))``,
    output ``α ⊙ x + c`` (one FC shared by both pooled vectors).

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "transform"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("fsam", spatial_dims, channels)
        self.conv = conv(spatial_dims, channels, channels, 3)
        self.dilated = nn.Sequential(conv(spatial_dims, channels, channels, 3, dilation=2), nn.ReLU(inplace=True))
        self.fc = conv(spatial_dims, channels, channels, 1)

    def transform(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv(x)
        f = self.dilated(c)
        alpha = torch.sigmoid(self.fc(global_avg(f)) + self.fc(global_max(f)))
        return alpha * x + c
