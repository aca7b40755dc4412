"""Coordinate attention (Hou et al.; the review's §2.2): one gate per spatial axis from axis-wise pooling."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import batch_norm, check_geometry, conv

REDUCTIONS = (32, 16, 8)


@register_block("coordinate", options={"reduction": REDUCTIONS})
class CoordinateAttention(Mechanism):
    """Coordinate attention: ``y = x ⊙ a_h ⊙ a_w (⊙ a_d)``, each ``a`` a gate along one axis.

    ``x`` is averaged over all axes but one, for each spatial axis; the pooled lines are
    concatenated, mixed by a shared 1x1 convolution (C → ``max(8, C // r)``, as the paper's
    ``mip``) + batch norm + h-swish, split back, and each axis' part goes through its own 1x1
    convolution (→ C) and σ. Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "gate"

    def __init__(self, spatial_dims: int, channels: int, *, reduction: int = 32) -> None:
        super().__init__()
        check_geometry("coordinate", spatial_dims, channels)
        hidden = max(8, channels // reduction)
        self.reduce = conv(spatial_dims, channels, hidden, 1)
        self.norm = batch_norm(spatial_dims, hidden)
        self.act = nn.Hardswish()
        self.expand = nn.ModuleList(conv(spatial_dims, hidden, channels, 1) for _ in range(spatial_dims))

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        axes = tuple(range(2, context.ndim))
        lengths = [context.shape[a] for a in axes]
        trailing = [1] * (len(axes) - 1)
        # (B, C, L_axis) per axis, concatenated as one (B, C, ΣL, 1, …) line for the shared conv
        lines = [context.mean(dim=tuple(o for o in axes if o != a)) for a in axes]
        mixed = self.act(self.norm(self.reduce(torch.cat(lines, dim=2).reshape(*context.shape[:2], -1, *trailing))))
        maps = []
        for axis, part, expand in zip(axes, mixed.split(lengths, dim=2), self.expand, strict=True):
            a = torch.sigmoid(expand(part)).flatten(2)  # (B, C, L_axis)
            maps.append(a.reshape(*a.shape[:2], *(a.shape[2] if o == axis else 1 for o in axes)))
        result = maps[0]
        for a in maps[1:]:
            result = result * a  # broadcast to (B, C, *spatial)
        return result
