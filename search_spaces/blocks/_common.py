"""Helpers shared by the attention blocks: argument checks and dimension-generic layers."""

from __future__ import annotations

from monai.networks.layers.factories import Conv
from torch import nn

from search_spaces._errors import SpecError


def check_geometry(block: str, spatial_dims: int, channels: int) -> None:
    """Reject spatial_dims other than 2/3 and non-positive channel counts, naming the argument."""
    if spatial_dims not in (2, 3):
        raise SpecError(f"{block}: spatial_dims={spatial_dims!r} is not valid; expected 2 or 3")
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise SpecError(f"{block}: channels={channels!r} is not valid; expected a positive integer")


def conv(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    """A same-padding convolution of the right dimensionality."""
    conv_type = Conv[Conv.CONV, spatial_dims]
    return conv_type(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2)
