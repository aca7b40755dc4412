"""Attention gate (Oktay et al.; MPU-Net eq. 10-12): skip features gated by the coarser decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism, check_gate_channels
from search_spaces.blocks._common import check_geometry, conv, resize_to


@register_block("ag", placements=("skip",))
class AttentionGate(Mechanism):
    """AG: ``α = σ(ψ(ReLU(W_x x + W_g g)))``, output ``α ⊙ x``.

    ``x`` is the skip feature ``(B, C, *spatial)``; ``g`` the coarser decoder feature
    ``(B, gate_channels, *coarser)``, projected by ``W_g`` and resized to ``x``'s grid.
    Valid only at skip connections, where such a gating signal exists.
    """

    kind = "gate"
    needs_gate = True

    def __init__(self, spatial_dims: int, channels: int, *, gate_channels: int) -> None:
        super().__init__()
        check_geometry("ag", spatial_dims, channels)
        check_gate_channels("ag", gate_channels)
        inter = max(1, channels // 2)
        self.w_x = conv(spatial_dims, channels, inter, 1, bias=False)
        self.w_g = conv(spatial_dims, gate_channels, inter, 1)
        self.psi = conv(spatial_dims, inter, 1, 1)

    def gate_map(self, context: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        self._check_gate(gate)
        assert gate is not None
        g = resize_to(self.w_g(gate), context)
        return torch.sigmoid(self.psi(F.relu(self.w_x(context) + g)))


@register_block("gff", placements=("skip",))
class GlobalFeatureFusion(Mechanism):
    """GFF (AF-Net eq. 5-6): skip fusion guided by the high-level feature ``F_H``.

    ``σ(N(conv1x1(GAP(F_H)))) ⊙ conv3x3(F_L) + up(conv1x1(F_H))``, where ``F_L = x`` is the skip
    feature ``(B, C, *spatial)`` and ``F_H`` the coarser decoder feature ``(B, gate_channels, …)``.
    ``N`` normalises the pooled channel vector across channels (the paper's BN would be undefined
    for the batch-1 training of 3D volumes). Valid only at skip connections.
    """

    kind = "transform"
    needs_gate = True

    def __init__(self, spatial_dims: int, channels: int, *, gate_channels: int) -> None:
        super().__init__()
        check_geometry("gff", spatial_dims, channels)
        check_gate_channels("gff", gate_channels)
        self.weights = nn.Sequential(conv(spatial_dims, gate_channels, channels, 1), nn.GroupNorm(1, channels))
        self.low = conv(spatial_dims, channels, channels, 3)
        self.high = conv(spatial_dims, gate_channels, channels, 1)

    def transform(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        self._check_gate(gate)
        assert gate is not None
        pooled = gate.mean(dim=tuple(range(2, gate.ndim)), keepdim=True)
        return torch.sigmoid(self.weights(pooled)) * self.low(x) + resize_to(self.high(gate), x)
