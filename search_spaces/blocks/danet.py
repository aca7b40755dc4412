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
    affinity is unscaled, as in DANet. Fused attention kernels need the query, key and value to
    have one head size, so ``B`` and ``C'`` are padded with zero channels up to ``C``: the scores
    ``Bᵀ C'`` are unchanged, and ``scaled_dot_product_attention`` then runs its fused (flash)
    kernel, which never materialises the N×N matrix, forward or backward. The price is that the
    score product runs at width ``C`` instead of ``C // 8`` (counted so in the FLOPs).
    Input ``(B, C, *spatial)`` in 2D or 3D; same-shape output.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("pam", spatial_dims, channels)
        self.qkv = QueryKeyValue(spatial_dims, channels)

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        query, key, value = self.qkv(x)
        width = value.shape[1]
        # (B, 1, N, C) contiguous, query and key zero-padded to the value's width
        q, k = (F.pad(t, (0, 0) * (x.ndim - 2) + (0, width - t.shape[1])) for t in (query, key))
        q, k, v = (t.flatten(2).transpose(1, 2).contiguous().unsqueeze(1) for t in (q, k, value))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0).squeeze(1).transpose(1, 2)
        return self.qkv.gamma * out.reshape(x.shape)


@register_block("cam")
class ChannelAffinityAttention(Mechanism):
    """CAM: ``γ · (A X) + x`` with the C×C channel affinity ``A = softmax(max_row(E) − E)``,
    ``E = X Xᵀ / N``, ``γ`` from 0 (DANet's reference code, with a 1/N scale).

    ``X`` is the input flattened to ``(C, N)``. DANet's code takes ``softmax(max − E)`` of the raw
    ``E = X Xᵀ``; its entries grow with N, so at a realistic 64² level the row softmax is one-hot
    (CAM a learned scalar) and at 256² ``X Xᵀ`` overflows in fp16. Dividing by N makes ``E`` the
    channels' mean second moment, independent of the resolution; it is computed in float32 even
    under autocast. Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape and dtype.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("cam", spatial_dims, channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.flatten(2)  # (B, C, N)
            flat = flat if flat.dtype == torch.float64 else flat.float()
            energy = torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[-1]  # (B, C, C)
            affinity = torch.softmax(energy.amax(dim=-1, keepdim=True) - energy, dim=-1)
            out = torch.bmm(affinity, flat).reshape(x.shape)
        return self.gamma * out.to(x.dtype)
