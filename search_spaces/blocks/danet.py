"""DANet's position and channel attention modules (Fu et al.; MPU-Net eq. 8-9)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import QueryKeyValue, check_geometry


@register_block("pam")
class PositionAttention(Mechanism):
    """PAM: ``γ · (D softmax(Bᵀ C')) + x`` over all positions, ``γ`` a learnable scalar from 0.

    ``B, C'`` are 1x1 convolutions to ``max(1, C // 8)`` channels and ``D`` to ``C`` channels; the
    position affinity goes through ``scaled_dot_product_attention`` (unscaled, as in DANet), so no
    N×N matrix is kept where a fused kernel applies. Input ``(B, C, *spatial)``; same-shape output.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("pam", spatial_dims, channels)
        self.qkv = QueryKeyValue(spatial_dims, channels)

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (t.flatten(2).transpose(1, 2).contiguous().unsqueeze(1) for t in self.qkv(x))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0).squeeze(1).transpose(1, 2)
        return self.qkv.gamma * out.reshape(x.shape)


@register_block("cam")
class ChannelAffinityAttention(Mechanism):
    """CAM: ``γ · (softmax(X Xᵀ) X) + x`` with the C×C channel affinity, ``γ`` from 0.

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("cam", spatial_dims, channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.flatten(2)  # (B, C, N)
        affinity = torch.softmax(torch.bmm(flat, flat.transpose(1, 2)), dim=-1)  # (B, C, C)
        return self.gamma * torch.bmm(affinity, flat).reshape(x.shape)
