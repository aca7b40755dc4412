"""Bottleneck attention module (BAM, Park et al.; the review's §2.2): channel ∥ spatial, summed."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import batch_norm, channel_mlp, check_geometry, conv, global_avg, reduced

REDUCTIONS = (16, 8, 4)
#: BAM's dilation of the two 3x3 convolutions of its spatial branch.
DILATION = 4


def _spatial_branch(spatial_dims: int, channels: int, hidden: int) -> nn.Sequential:
    layers: list[nn.Module] = [conv(spatial_dims, channels, hidden, 1), batch_norm(spatial_dims, hidden), nn.ReLU()]
    for _ in range(2):
        layers += [
            conv(spatial_dims, hidden, hidden, 3, dilation=DILATION),
            batch_norm(spatial_dims, hidden),
            nn.ReLU(),
        ]
    layers.append(conv(spatial_dims, hidden, 1, 1))
    return nn.Sequential(*layers)


@register_block("bam", options={"reduction": REDUCTIONS})
class BottleneckAttention(Mechanism):
    """BAM: ``x + x ⊙ σ(Mc(x) + Ms(x))``, channel and spatial maps in parallel, broadcast and summed.

    ``Mc = MLP(GAP(x))`` (C → C/r → C); ``Ms`` = 1x1 to C/r, two 3x3 convolutions with dilation 4,
    1x1 to one channel, batch norm + ReLU after each hidden layer (as BAM's code). Deviation: the
    channel MLP has no batch norm, which over a pooled ``(B, C/r)`` vector is undefined at batch 1
    (3D training); the spatial branch keeps it, since it also normalises over positions.
    A gate with map ``1 + σ(Mc + Ms)``. Input ``(B, C, *spatial)`` in 2D or 3D; same-shape output.
    """

    kind = "gate"

    def __init__(self, spatial_dims: int, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        check_geometry("bam", spatial_dims, channels)
        self.channel = channel_mlp(spatial_dims, channels, reduction)
        self.spatial = _spatial_branch(spatial_dims, channels, reduced(channels, reduction))

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return 1 + torch.sigmoid(self.channel(global_avg(context)) + self.spatial(context))
