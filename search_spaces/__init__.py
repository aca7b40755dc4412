"""What a candidate network is: attention blocks, backbones, ``ArchSpec``, building and sampling."""

from __future__ import annotations

from search_spaces import blocks as _blocks  # noqa: F401  (registers the attention blocks)
from search_spaces._backbones import DenseUNet, EncoderDecoder, ResUNet, UNet
from search_spaces._build import build_model
from search_spaces._errors import SpecError
from search_spaces._registry import (
    PLACEMENTS,
    BlockInfo,
    block_info,
    block_names,
    canonical_block,
    create_block,
    register_backbone,
    register_block,
    register_preset,
)
from search_spaces._resnet import ResNet34  # registers resnet34 (after the U-Net backbones it builds on)
from search_spaces._space import (
    SampleContext,
    SearchSpace,
    TrialLike,
    baseline_params,
    count_architectures,
    distinct_mechanisms,
    enumerate_specs,
    level_subsets,
    replay_spec,
    sample_spec,
)
from search_spaces._spec import SCHEMA_VERSION, ArchSpec, AttentionSpec

__all__ = [
    "PLACEMENTS",
    "SCHEMA_VERSION",
    "ArchSpec",
    "AttentionSpec",
    "BlockInfo",
    "DenseUNet",
    "EncoderDecoder",
    "ResNet34",
    "ResUNet",
    "SampleContext",
    "SearchSpace",
    "SpecError",
    "TrialLike",
    "UNet",
    "baseline_params",
    "block_info",
    "block_names",
    "build_model",
    "canonical_block",
    "count_architectures",
    "create_block",
    "distinct_mechanisms",
    "enumerate_specs",
    "level_subsets",
    "register_backbone",
    "register_block",
    "register_preset",
    "replay_spec",
    "sample_spec",
]
