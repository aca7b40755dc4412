"""The U-Net backbone, generic over 2D and 3D, with attention on chosen skip levels."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from search_spaces._registry import block_info, register_backbone
from search_spaces._spec import ArchSpec


def _double_conv(spatial_dims: int, in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, norm=norm, act="relu"),
        Convolution(spatial_dims, out_channels, out_channels, kernel_size=3, norm=norm, act="relu"),
    )


def attention_block(spec: ArchSpec, placement: str, level: int) -> nn.Module:
    """The spec's attention block if it is placed at ``(placement, level)``, else an identity."""
    att = spec.attention
    if level not in att.levels(placement):
        return nn.Identity()
    info = block_info(att.block)
    return info.factory(spec.spatial_dims, spec.channels[level], **dict(att.options))


@register_backbone("unet")
class UNet(nn.Module):
    """A U-Net (Ronneberger et al.) whose depth and widths come from ``spec.channels``.

    Each level is two 3x3 conv–norm–ReLU layers; down-sampling is 2x max-pooling and up-sampling a
    2x transposed convolution. The attention block of ``spec.attention`` is applied to the encoder
    feature of each chosen skip level before the decoder concatenates it.
    Input ``(B, in_channels, *spatial)`` with every spatial size divisible by ``2 ** (depth - 1)``;
    output ``(B, out_channels, *spatial)`` logits.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        dims, chans, norm = spec.spatial_dims, spec.channels, spec.norm
        self.spec = spec
        self.encoder = nn.ModuleList()
        previous = spec.in_channels
        for width in chans:
            self.encoder.append(_double_conv(dims, previous, width, norm))
            previous = width
        self.pool = Pool[Pool.MAX, dims](kernel_size=2)
        self.skip_attention = nn.ModuleList(attention_block(spec, "skip", lvl) for lvl in spec.skip_levels)
        transpose = Conv[Conv.CONVTRANS, dims]
        self.up = nn.ModuleList(
            transpose(chans[lvl + 1], chans[lvl], kernel_size=2, stride=2) for lvl in spec.skip_levels
        )
        self.decoder = nn.ModuleList(
            _double_conv(dims, 2 * chans[lvl], chans[lvl], norm) for lvl in spec.skip_levels
        )
        self.head = Conv[Conv.CONV, dims](chans[0], spec.out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (len(self.encoder) - 1)
        if any(size % factor for size in x.shape[2:]):
            raise ValueError(
                f"input spatial size {tuple(x.shape[2:])} must be divisible by {factor} "
                f"for a {len(self.encoder)}-level U-Net"
            )
        skips = []
        for level, stage in enumerate(self.encoder):
            if level > 0:
                x = self.pool(x)
            x = stage(x)
            if level < len(self.skip_attention):
                skips.append(self.skip_attention[level](x))
        for level in reversed(range(len(skips))):
            x = self.up[level](x)
            x = self.decoder[level](torch.cat([skips[level], x], dim=1))
        return self.head(x)
