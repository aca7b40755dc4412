"""The identity block: "no attention" as a point of the search space."""

from __future__ import annotations

import torch

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry


@register_block("none")
class NoAttention(Mechanism):
    """Identity: the backbone without attention at this site. Input ``(B, C, *spatial)``."""

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        check_geometry("none", spatial_dims, channels)

    def transform(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return x
