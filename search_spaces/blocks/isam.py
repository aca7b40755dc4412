"""Image-space attention (bilateral spatial attention paper): Swin blocks + conv + residual."""

from __future__ import annotations

import math

import torch
from monai.networks.nets.swin_unetr import BasicLayer

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, conv

WINDOWS = (4, 8)


@register_block("isam", options={"window": WINDOWS})
class ImageSpaceAttention(Mechanism):
    """ISAM: two MONAI Swin transformer blocks (regular, then shifted windows), a 3x3 convolution
    and a residual: ``x + conv(swin(x))``.

    Windows larger than the feature map shrink to it (MONAI's rule). Heads: ``gcd(C, 4)``.
    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int, *, window: int = 4) -> None:
        super().__init__()
        check_geometry("isam", spatial_dims, channels)
        self.swin = BasicLayer(
            dim=channels,
            depth=2,
            num_heads=math.gcd(channels, 4),
            window_size=(window,) * spatial_dims,
            drop_path=[0.0, 0.0],
            qkv_bias=True,
        )
        self.conv = conv(spatial_dims, channels, channels, 3)

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        result: torch.Tensor = self.conv(self.swin(x.contiguous()))
        return result
