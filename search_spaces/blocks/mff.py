"""Multi-scale feature fusion (AF-Net §3.2): parallel dilated branches fused back to C channels."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, conv

DILATIONS = (1, 2, 3)


def _branch(spatial_dims: int, channels: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for dilation in DILATIONS[:depth]:
        layers += [conv(spatial_dims, channels, channels, 3, dilation=dilation), nn.ReLU(inplace=True)]
    layers.append(conv(spatial_dims, channels, channels, 1))
    return nn.Sequential(*layers)


@register_block("mff")
class MultiScaleFusion(Mechanism):
    """MFF: three branches of one, two and three stacked 3x3 convolutions with dilations 1, 2, 3
    (receptive fields 3, 7, 13), each closed by a 1x1 convolution, concatenated with the input
    and reduced back to ``C`` by a 1x1 convolution.

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "transform"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("mff", spatial_dims, channels)
        self.branches = nn.ModuleList(_branch(spatial_dims, channels, depth) for depth in (1, 2, 3))
        self.fuse = conv(spatial_dims, 4 * channels, channels, 1)

    def transform(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return self.fuse(torch.cat([x, *(branch(x) for branch in self.branches)], dim=1))
