"""Attention blocks, one per module; importing this package registers them all."""

from __future__ import annotations

from search_spaces.blocks._base import KINDS, Mechanism
from search_spaces.blocks.ag import AttentionGate, GlobalFeatureFusion
from search_spaces.blocks.axial import AxialAttention
from search_spaces.blocks.bam import BottleneckAttention
from search_spaces.blocks.cbam import ChannelAttention, SpatialAttention
from search_spaces.blocks.cca import CrissCrossAttention
from search_spaces.blocks.compose import Composition, composable_blocks
from search_spaces.blocks.coordinate import CoordinateAttention
from search_spaces.blocks.danet import ChannelAffinityAttention, PositionAttention
from search_spaces.blocks.eca import EfficientChannelAttention
from search_spaces.blocks.fsam import FeatureSpaceAttention
from search_spaces.blocks.isam import ImageSpaceAttention
from search_spaces.blocks.mff import MultiScaleFusion
from search_spaces.blocks.none import NoAttention
from search_spaces.blocks.presets import ARRANGEMENTS, SHORTCUTS
from search_spaces.blocks.pwa import PointwiseAttention, PointwiseMap
from search_spaces.blocks.sa import SIMILARITIES, SelfAttention, SelfAttentionResponse
from search_spaces.blocks.se import SqueezeExcitation
from search_spaces.blocks.sk import SelectiveKernel

__all__ = [
    "ARRANGEMENTS",
    "KINDS",
    "SHORTCUTS",
    "SIMILARITIES",
    "AttentionGate",
    "AxialAttention",
    "BottleneckAttention",
    "ChannelAffinityAttention",
    "ChannelAttention",
    "Composition",
    "CoordinateAttention",
    "CrissCrossAttention",
    "EfficientChannelAttention",
    "FeatureSpaceAttention",
    "GlobalFeatureFusion",
    "ImageSpaceAttention",
    "Mechanism",
    "MultiScaleFusion",
    "NoAttention",
    "PointwiseAttention",
    "PointwiseMap",
    "PositionAttention",
    "SelectiveKernel",
    "SelfAttention",
    "SelfAttentionResponse",
    "SpatialAttention",
    "SqueezeExcitation",
    "composable_blocks",
]
