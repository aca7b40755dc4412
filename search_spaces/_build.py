"""The one bridge from an architecture spec to a module."""

from __future__ import annotations

from torch import nn

from search_spaces._registry import BACKBONES
from search_spaces._spec import ArchSpec


def build_model(spec: ArchSpec) -> nn.Module:
    """Build the network described by ``spec`` (freshly initialised)."""
    factory = BACKBONES.get(spec.backbone, field_name="backbone")
    model: nn.Module = factory(spec)
    return model
