"""Attention blocks, one per module; importing this package registers them all."""

from __future__ import annotations

from search_spaces.blocks.joint import ARRANGEMENTS, SHORTCUTS, JointAttention
from search_spaces.blocks.none import NoAttention
from search_spaces.blocks.pwa import PointwiseAttention, PointwiseMap
from search_spaces.blocks.sa import SIMILARITIES, SelfAttention, SelfAttentionResponse

__all__ = [
    "ARRANGEMENTS",
    "SHORTCUTS",
    "SIMILARITIES",
    "JointAttention",
    "NoAttention",
    "PointwiseAttention",
    "PointwiseMap",
    "SelfAttention",
    "SelfAttentionResponse",
]
