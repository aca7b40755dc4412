"""Criss-cross attention (CCNet, Huang et al.; the review's §2.4): self-similarity along axes."""

from __future__ import annotations

import torch

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import QueryKeyValue, check_geometry

#: How many times the criss-cross attention is applied (CCNet's R): 2 lets every position reach every other.
RECURRENCES = (2, 1)


@register_block("cca", options={"recurrence": RECURRENCES})
class CrissCrossAttention(Mechanism):
    """CCA: each position attends to the positions sharing all but one coordinate with it (its row
    and column in 2D, plus its depth line in 3D), with one softmax over that criss-cross path;
    ``a(x) = γ · Σ A·V + x``, ``γ`` a learnable scalar from 0. The position itself is counted once.

    CCNet's recurrence applies ``a`` ``recurrence`` times with shared weights (``x₁ = a(x)``,
    ``x₂ = a(x₁)``): with R = 2 every position reaches every other (one line then another).
    Cost O(R·N·(H+W)·C') instead of O(N²·C'). Input ``(B, C, *spatial)``; same-shape output.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int, *, recurrence: int = 2) -> None:
        super().__init__()
        check_geometry("cca", spatial_dims, channels)
        self.recurrence = recurrence
        self.qkv = QueryKeyValue(spatial_dims, channels)

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        total = self._criss_cross(x)
        y = x + total
        for _ in range(self.recurrence - 1):  # the increments summed, so R = 1 is exactly one pass
            step = self._criss_cross(y)
            y = y + step
            total = total + step
        return total

    def _criss_cross(self, x: torch.Tensor) -> torch.Tensor:
        """One criss-cross pass without its residual: ``γ · Σ A·V``."""
        q, k, v = self.qkv(x)
        axes = range(2, x.ndim)
        energies = []
        for position, axis in enumerate(axes):
            # (B, *spatial, L_axis): similarity of each position to every position on its line
            energy = torch.einsum("bc...i,bc...j->b...ij", q.movedim(axis, -1), k.movedim(axis, -1))
            if position > 0:  # the position itself belongs to the first axis' line only
                eye = torch.eye(energy.shape[-1], dtype=torch.bool, device=x.device)
                energy = energy.masked_fill(eye, float("-inf"))
            energies.append(energy.movedim(-2, axis - 1))  # back to (B, *spatial, L)
        weights = torch.softmax(torch.cat(energies, dim=-1), dim=-1)
        out = torch.zeros_like(v)
        offset = 0
        for axis, energy in zip(axes, energies, strict=True):
            length = energy.shape[-1]
            w = weights[..., offset : offset + length].movedim(axis - 1, -2)  # (B, ..., L, L)
            va = v.movedim(axis, -1)  # (B, C, ..., L)
            out = out + torch.einsum("b...ij,bc...j->bc...i", w, va).movedim(-1, axis)
            offset += length
        return self.qkv.gamma * out
