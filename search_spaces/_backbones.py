"""Encoder-decoder backbones, generic over 2D and 3D, with attention at the spec's sites."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.layers.factories import Act, Conv, Norm, Pool
from torch import nn

from search_spaces._registry import block_info, register_backbone
from search_spaces._spec import ArchSpec


def _double_conv(spatial_dims: int, in_channels: int, out_channels: int, norm: str) -> nn.Module:
    return nn.Sequential(
        Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, norm=norm, act="relu"),
        Convolution(spatial_dims, out_channels, out_channels, kernel_size=3, norm=norm, act="relu"),
    )


class _Site(nn.Module):
    """One attention site: the spec's block, or nothing. Passes the gating signal on if needed."""

    def __init__(self, spec: ArchSpec, placement: str, level: int, gate_channels: int | None) -> None:
        super().__init__()
        self.block: nn.Module | None = None
        self.uses_gate = False
        for att in spec.mechanisms:  # the spec guarantees at most one block per site
            if level in att.levels(placement):
                info = block_info(att.block)
                options = dict(att.options)
                self.uses_gate = info.uses_gate(options)
                extra = {"gate_channels": gate_channels} if self.uses_gate else {}
                self.block = info.factory(spec.spatial_dims, spec.channels[level], **options, **extra)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        if self.block is None:
            return x
        return self.block(x, gate) if self.uses_gate else self.block(x)


class EncoderDecoder(nn.Module):
    """A U-shaped network whose depth and widths come from ``spec.channels``.

    Level ``l`` of the encoder holds ``channels[l]`` features at ``1 / 2**l`` resolution; the last
    level is the bottleneck. Attention sites, each present only if the spec places its block there:
    ``encoder`` (on an encoder stage's output, before it feeds the skip and the next stage),
    ``bottleneck``, ``skip`` (on the skip feature before concatenation; gating blocks receive the
    coarser decoder feature) and ``decoder`` (on a decoder stage's output).
    Subclasses choose the stages. Input ``(B, in_channels, *spatial)`` with every spatial size
    divisible by ``2 ** (depth - 1)``; output ``(B, out_channels, *spatial)`` logits.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        dims, chans = spec.spatial_dims, spec.channels
        depth = len(chans)
        self.spec = spec
        self.encoder = nn.ModuleList(
            self.encoder_stage(spec, spec.in_channels if level == 0 else chans[level - 1], chans[level])
            for level in range(depth)
        )
        self.pool = Pool[Pool.MAX, dims](kernel_size=2)
        skips = range(depth - 1)
        self.encoder_attention = nn.ModuleList(_Site(spec, "encoder", lvl, None) for lvl in skips)
        self.bottleneck_attention = _Site(spec, "bottleneck", depth - 1, None)
        self.skip_attention = nn.ModuleList(_Site(spec, "skip", lvl, chans[lvl + 1]) for lvl in skips)
        transpose = Conv[Conv.CONVTRANS, dims]
        self.up = nn.ModuleList(transpose(chans[lvl + 1], chans[lvl], kernel_size=2, stride=2) for lvl in skips)
        self.decoder = nn.ModuleList(self.decoder_stage(spec, 2 * chans[lvl], chans[lvl]) for lvl in skips)
        self.decoder_attention = nn.ModuleList(_Site(spec, "decoder", lvl, None) for lvl in skips)
        self.head = Conv[Conv.CONV, dims](chans[0], spec.out_channels, kernel_size=1)

    def encoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int) -> nn.Module:
        return _double_conv(spec.spatial_dims, in_channels, out_channels, spec.norm)

    def decoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int) -> nn.Module:
        return _double_conv(spec.spatial_dims, in_channels, out_channels, spec.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        depth = len(self.encoder)
        factor = 2 ** (depth - 1)
        if any(size % factor for size in x.shape[2:]):
            raise ValueError(
                f"input spatial size {tuple(x.shape[2:])} must be divisible by {factor} for a {depth}-level backbone"
            )
        features = []
        for level, stage in enumerate(self.encoder):
            if level > 0:
                x = self.pool(x)
            x = stage(x)
            if level < depth - 1:
                x = self.encoder_attention[level](x)
                features.append(x)
        x = self.bottleneck_attention(x)
        for level in reversed(range(depth - 1)):
            skip = self.skip_attention[level](features[level], x)
            x = self.up[level](x)
            x = self.decoder[level](torch.cat([skip, x], dim=1))
            x = self.decoder_attention[level](x)
        return self.head(x)


@register_backbone("unet")
class UNet(EncoderDecoder):
    """U-Net (Ronneberger et al.): two 3x3 conv–norm–ReLU layers per level, max-pool down, transposed-conv up."""


@register_backbone("resunet")
class ResUNet(EncoderDecoder):
    """A residual encoder (AF-Net style): each encoder level is a two-convolution residual unit
    (MONAI ``ResidualUnit``, 1x1 projection where the width changes); U-Net decoder."""

    def encoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int) -> nn.Module:
        return ResidualUnit(
            spec.spatial_dims,
            in_channels,
            out_channels,
            strides=1,
            kernel_size=3,
            subunits=2,
            act="relu",
            norm=spec.norm,
        )


class _DenseBlock(nn.Module):
    """Dense block (Huang et al.): each layer norm–ReLU–conv3x3 adds ``growth`` features to the
    concatenation of all earlier ones; a 1x1 transition maps the result to ``out_channels``."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, norm: str, layers: int = 3) -> None:
        super().__init__()
        growth = max(4, out_channels // 2)
        norm_type = Norm[norm, spatial_dims]
        conv_type = Conv[Conv.CONV, spatial_dims]
        self.layers = nn.ModuleList()
        width = in_channels
        for _ in range(layers):
            self.layers.append(
                nn.Sequential(
                    norm_type(width) if norm == "batch" else norm_type(width, affine=True),
                    Act[Act.RELU](),
                    conv_type(width, growth, kernel_size=3, padding=1, bias=False),
                )
            )
            width += growth
        self.transition = Convolution(spatial_dims, width, out_channels, kernel_size=1, norm=norm, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.transition(torch.cat(features, dim=1))


@register_backbone("denseunet")
class DenseUNet(EncoderDecoder):
    """DenseUNet (the joint-attention paper's backbone): dense blocks of three layers at every
    encoder and decoder level."""

    def encoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int) -> nn.Module:
        return _DenseBlock(spec.spatial_dims, in_channels, out_channels, spec.norm)

    def decoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int) -> nn.Module:
        return _DenseBlock(spec.spatial_dims, in_channels, out_channels, spec.norm)
