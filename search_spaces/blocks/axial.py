"""Axial attention (Ho et al.; gated axial attention of MedT, Valanarasu et al.; the review's §2.4)."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, conv

VARIANTS = ("axial", "gated")
#: Relative offsets are clipped to ±MAX_DISTANCE (Shaw et al.), so one table serves any axis length.
MAX_DISTANCE = 32
#: MedT's initial value of the gates on the positional terms.
GATE_INIT = 0.1


def relative_index(length: int, device: torch.device) -> torch.Tensor:
    """``(L, L)`` indices into a relative table: entry ``[o, p]`` is ``clip(p − o) + MAX_DISTANCE``."""
    positions = torch.arange(length, device=device)
    return (positions[None, :] - positions[:, None]).clamp(-MAX_DISTANCE, MAX_DISTANCE) + MAX_DISTANCE


class AxisAttention(nn.Module):
    """Multi-head self-attention along one axis with query- and key-side relative position terms."""

    def __init__(self, spatial_dims: int, channels: int, heads: int, *, gated: bool) -> None:
        super().__init__()
        self.heads = heads
        head_dim = channels // heads
        self.qkv = conv(spatial_dims, channels, 3 * channels, 1)
        self.rel_query = nn.Parameter(torch.randn(2 * MAX_DISTANCE + 1, head_dim) * head_dim**-0.5)
        self.rel_key = nn.Parameter(torch.randn(2 * MAX_DISTANCE + 1, head_dim) * head_dim**-0.5)
        self.gate_query: nn.Parameter | None = None
        self.gate_key: nn.Parameter | None = None
        if gated:
            self.gate_query = nn.Parameter(torch.full((1,), GATE_INIT))
            self.gate_key = nn.Parameter(torch.full((1,), GATE_INIT))

    def forward(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        batch, channels, length = x.shape[0], x.shape[1], x.shape[axis]
        qkv = self.qkv(x).movedim(axis, -1)  # (B, 3C, *others, L)
        others = qkv.shape[2:-1]
        # (3, B·lines, heads, L, head_dim), contiguous so SDPA can use its fused kernels
        qkv = qkv.reshape(batch, 3, self.heads, channels // self.heads, -1, length).permute(1, 0, 4, 2, 5, 3)
        q, k, v = (t.reshape(-1, self.heads, length, channels // self.heads).contiguous() for t in qkv)
        index = relative_index(length, x.device)
        # q_o·r^q_(p−o) + k_p·r^k_(p−o): an (L, L) bias per line and head, never (N, N)
        query_term = torch.einsum("nhod,opd->nhop", q, self.rel_query[index])
        key_term = torch.einsum("nhpd,opd->nhop", k, self.rel_key[index])
        scale = 1 / math.sqrt(q.shape[-1])
        if self.gate_query is not None and self.gate_key is not None:
            bias = torch.addcmul(self.gate_query * scale * query_term, self.gate_key * scale, key_term)
        else:  # in place: the einsums' outputs are not saved for backward, so no extra (L, L) buffers
            bias = query_term.add_(key_term).mul_(scale)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
        out = out.reshape(batch, -1, self.heads, length, channels // self.heads).permute(0, 2, 4, 1, 3)
        return out.reshape(batch, channels, *others, length).movedim(-1, axis)


@register_block("axial", options={"variant": VARIANTS})
class AxialAttention(Mechanism):
    """Axial attention: multi-head self-attention along H, then W (then D in 3D), ``x + W_o(y)``.

    Along each axis (own 1x1 q/k/v projection, ``gcd(C, 4)`` heads, head size ``d``):
    ``softmax_p((q_o·k_p + g_q q_o·r^q_(p−o) + g_k k_p·r^k_(p−o)) / √d) v_p``, relative offsets
    clipped at ±32; ``g = 1`` (``axial``) or learnable gates from 0.1 (``gated``, MedT). Deviation:
    MedT's value-side term ``r^v`` (and its gates) is left out, so that each axis is one
    ``scaled_dot_product_attention`` call with an ``(L, L)`` bias. ``W_o`` starts small (near
    identity). Cost O(N·(H+W)·C); input ``(B, C, *spatial)`` in 2D or 3D; same-shape output.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int, *, variant: str = "axial") -> None:
        super().__init__()
        check_geometry("axial", spatial_dims, channels)
        heads = math.gcd(channels, 4)
        self.axes = nn.ModuleList(
            AxisAttention(spatial_dims, channels, heads, gated=variant == "gated") for _ in range(spatial_dims)
        )
        self.out = conv(spatial_dims, channels, channels, 1)
        nn.init.normal_(cast(torch.Tensor, self.out.weight), std=1e-2)
        nn.init.zeros_(cast(torch.Tensor, self.out.bias))

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        y = x
        order = [*range(3, x.ndim), 2] if x.ndim == 5 else [2, 3]  # H, W, then D
        for axis, attention in zip(order, self.axes, strict=True):
            y = attention(y, axis)
        result: torch.Tensor = self.out(y)
        return result
