"""Selective kernel attention (SKNet, Li et al.; the review's multi-branch eq. 1-2)."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import batch_norm, check_geometry, conv, global_avg

#: SKNet's reduction ``r`` of the fused descriptor (with the floor ``L``, it only matters for C > 512).
REDUCTION = 16
#: Branch ``m`` is a 3x3 convolution with dilation ``m + 1`` (receptive field 3, 5, 7, as SKNet's).
BRANCHES = (2, 3)
#: SKNet's floor ``L`` on the width of the fused descriptor.
MIN_HIDDEN = 32


def sk_hidden(channels: int, reduction: int = REDUCTION) -> int:
    """``d = max(C / r, L)`` with ``L = 32`` as SKNet, capped at ``C`` so narrow levels never widen."""
    return min(channels, max(channels // reduction, MIN_HIDDEN))


@register_block("sk", options={"branches": BRANCHES})
class SelectiveKernel(Mechanism):
    """SK: dilated-conv branches mixed per channel by a softmax from their fused global context.

    ``V = Σ_m a_m ⊙ U_m``, ``U_m = ReLU(BN(conv3x3_(dilation m+1)(x)))``, softmax weights ``a``
    across branches from ``z = ReLU(FC(GAP(Σ_m U_m)))`` (C → d, d = max(C/16, 32)) and one FC
    (d → C) per branch.

    Deviations, for small 3D batches and narrow levels: dense (not grouped) branch convolutions,
    no batch norm on ``z`` (undefined for a ``(B, d)`` vector at batch 1), ``d`` capped at ``C``.
    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "transform"

    def __init__(self, spatial_dims: int, channels: int, *, branches: int = 2) -> None:
        super().__init__()
        check_geometry("sk", spatial_dims, channels)
        self.branches = nn.ModuleList(
            nn.Sequential(
                conv(spatial_dims, channels, channels, 3, dilation=m + 1, bias=False),
                batch_norm(spatial_dims, channels),
                nn.ReLU(),
            )
            for m in range(branches)
        )
        hidden = sk_hidden(channels)
        self.squeeze = nn.Sequential(conv(spatial_dims, channels, hidden, 1), nn.ReLU())
        self.select = conv(spatial_dims, hidden, branches * channels, 1)  # the per-branch FCs, stacked

    def transform(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        u = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, M, C, *spatial)
        z = self.squeeze(global_avg(u.sum(dim=1)))
        logits = self.select(z).reshape(x.shape[0], len(self.branches), x.shape[1], *z.shape[2:])
        return (torch.softmax(logits, dim=1) * u).sum(dim=1)
