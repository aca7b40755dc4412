"""CBAM's channel and spatial attention (Woo et al.; AF-Net eq. 2-3)."""

from __future__ import annotations

import torch

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import channel_mlp, check_geometry, conv, global_avg, global_max

REDUCTIONS = (16, 8, 4)
KERNELS = (7, 3)


@register_block("cbam_channel", options={"reduction": REDUCTIONS})
class ChannelAttention(Mechanism):
    """CBAM channel attention: ``σ(MLP(GAP(x)) + MLP(GMP(x))) ⊙ x`` with one shared MLP.

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "gate"

    def __init__(self, spatial_dims: int, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        check_geometry("cbam_channel", spatial_dims, channels)
        self.mlp = channel_mlp(spatial_dims, channels, reduction)

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.mlp(global_avg(context)) + self.mlp(global_max(context)))


@register_block("cbam_spatial", options={"kernel_size": KERNELS})
class SpatialAttention(Mechanism):
    """CBAM spatial attention: ``σ(conv_k([mean_c(x); max_c(x)])) ⊙ x``.

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "gate"

    def __init__(self, spatial_dims: int, channels: int, *, kernel_size: int = 7) -> None:
        super().__init__()
        check_geometry("cbam_spatial", spatial_dims, channels)
        self.conv = conv(spatial_dims, 2, 1, kernel_size)

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        pooled = torch.cat([context.mean(dim=1, keepdim=True), context.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))
