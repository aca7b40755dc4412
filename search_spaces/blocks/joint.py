"""Joint attention: the nine PWA × SA compositions of the DenseUNet-JA paper."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._errors import choose
from search_spaces._registry import register_block
from search_spaces.blocks.pwa import PointwiseMap
from search_spaces.blocks.sa import SIMILARITIES, SelfAttentionResponse

ARRANGEMENTS = ("parallel", "sa_first", "pwa_first")
SHORTCUTS = ("inside", "outside", "separate")


@register_block(
    "joint",
    options={"arrangement": ARRANGEMENTS, "shortcut": SHORTCUTS, "similarity": SIMILARITIES},
)
class JointAttention(nn.Module):
    """Joint point-wise + self-attention (Joint attention for medical image segmentation, Fig. 2).

    ``M`` is the PWA gate and ``S`` the self-attention response without residual; the nine
    variants (RESEARCH.md's table) are addressed by ``arrangement`` × ``shortcut``:

    ========== ========= ==========================================
    parallel   inside    ``M(x) ⊙ (x + S(x))``
    parallel   outside   ``x + M(x) ⊙ S(x)``
    parallel   separate  ``(1 + M(x)) ⊙ (x + S(x))``
    sa_first   inside    ``z = x + S(x)``; ``M(z) ⊙ z``
    sa_first   outside   ``s = S(x)``; ``x + M(s) ⊙ s``
    sa_first   separate  ``z = x + S(x)``; ``(1 + M(z)) ⊙ z``
    pwa_first  inside    ``p = M(x) ⊙ x``; ``p + S(p)``
    pwa_first  outside   ``p = M(x) ⊙ x``; ``x + S(p)``
    pwa_first  separate  ``p = (1 + M(x)) ⊙ x``; ``p + S(p)``
    ========== ========= ==========================================

    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        *,
        arrangement: str = "parallel",
        shortcut: str = "inside",
        similarity: str = "dot",
    ) -> None:
        super().__init__()
        self.arrangement = choose("arrangement", arrangement, ARRANGEMENTS)
        self.shortcut = choose("shortcut", shortcut, SHORTCUTS)
        self.pwa = PointwiseMap(spatial_dims, channels)
        self.sa = SelfAttentionResponse(spatial_dims, channels, similarity=similarity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, s = self.pwa, self.sa
        if self.arrangement == "parallel":
            gate, response = m(x), s(x)
            if self.shortcut == "inside":
                return gate * (x + response)
            if self.shortcut == "outside":
                return x + gate * response
            return (1 + gate) * (x + response)
        if self.arrangement == "sa_first":
            if self.shortcut == "outside":
                response = s(x)
                return x + m(response) * response
            z = x + s(x)
            gate = m(z)
            return gate * z if self.shortcut == "inside" else (1 + gate) * z
        # pwa_first
        gate = m(x)
        p = (1 + gate) * x if self.shortcut == "separate" else gate * x
        return x + s(p) if self.shortcut == "outside" else p + s(p)
