"""Efficient channel attention (ECA-Net, Wang et al.; the review's §2.2): SE without the bottleneck."""

from __future__ import annotations

import math

import torch
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, global_avg


def eca_kernel_size(channels: int, *, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel: ``t = int(|(log2 C + b) / γ|)``, made odd (``t`` or ``t + 1``)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@register_block("eca")
class EfficientChannelAttention(Mechanism):
    """ECA: ``σ(conv1d_k(GAP(x))) ⊙ x``, a 1-D convolution across channels, ``k`` odd and ≈ log2(C)/2.

    No dimensionality reduction: each channel weight sees its ``k`` neighbours. Input
    ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "gate"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("eca", spatial_dims, channels)
        k = eca_kernel_size(channels)
        # A 1-D convolution along the channel axis, whatever the spatial dimensionality.
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        pooled = global_avg(context)
        weights: torch.Tensor = self.conv(pooled.flatten(1).unsqueeze(1))  # (B, 1, C)
        return torch.sigmoid(weights).reshape(pooled.shape)
