"""Self-attention / non-local block (SA), joint-attention paper eq. 5."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces._errors import choose
from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, conv

SIMILARITIES = ("dot", "softmax")


class SelfAttentionResponse(nn.Module):
    """The non-local response ``S(x) = W(Σ_j f(θ(x_i), φ(x_j)) g(x_j))`` without its residual.

    ``θ, φ, g`` are 1x1 convolutions to ``C' = max(1, C // 2)`` channels and ``W`` maps back to ``C``.

    - ``similarity="dot"``: ``f = θᵀφ / N``, computed in the associative form ``θ·(φᵀg)/N``:
      O(N·C'²) time and an extra C'×C' matrix, never the N×N one.
    - ``similarity="softmax"``: ``f = softmax_j(θᵀφ)`` (embedded Gaussian, unscaled as in
      non-local / DANet), through ``scaled_dot_product_attention`` so fused kernels apply.

    ``W`` is initialised small so that a block with its residual starts near the identity.
    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    def __init__(self, spatial_dims: int, channels: int, *, similarity: str = "dot") -> None:
        super().__init__()
        check_geometry("sa", spatial_dims, channels)
        self.similarity = choose("similarity", similarity, SIMILARITIES)
        inner = max(1, channels // 2)
        self.inner_channels = inner
        self.theta = conv(spatial_dims, channels, inner, kernel_size=1)
        self.phi = conv(spatial_dims, channels, inner, kernel_size=1)
        self.g = conv(spatial_dims, channels, inner, kernel_size=1)
        self.out = conv(spatial_dims, inner, channels, kernel_size=1)
        nn.init.normal_(cast(torch.Tensor, self.out.weight), std=1e-2)
        nn.init.zeros_(cast(torch.Tensor, self.out.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, spatial = x.shape[0], x.shape[2:]
        theta = self.theta(x).flatten(2)  # (B, C', N)
        phi = self.phi(x).flatten(2)
        g = self.g(x).flatten(2)
        if self.similarity == "dot":
            n = theta.shape[-1]
            context = torch.bmm(phi, g.transpose(1, 2)) / n  # (B, C', C'): Σ_j φ_j g_jᵀ / N
            y = torch.bmm(context.transpose(1, 2), theta)  # (B, C', N)
        else:
            # Contiguous (B, 1, N, C') inputs: with strided ones torch falls back to the math kernel,
            # which materialises the N×N matrix.
            q, k, v = (t.transpose(1, 2).contiguous().unsqueeze(1) for t in (theta, phi, g))
            y = F.scaled_dot_product_attention(q, k, v, scale=1.0).squeeze(1).transpose(1, 2)
        return self.out(y.reshape(batch, self.inner_channels, *spatial))


@register_block("sa", options={"similarity": SIMILARITIES})
class SelfAttention(Mechanism):
    """Self-attention with residual, ``SA(x) = x + S(x)`` (Wang et al. non-local; JA paper eq. 5).

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int, *, similarity: str = "dot") -> None:
        super().__init__()
        self.attention = SelfAttentionResponse(spatial_dims, channels, similarity=similarity)

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return self.attention(x)
