"""Encoder-decoder backbones, generic over 2D and 3D, with attention at the spec's sites."""

from __future__ import annotations

from typing import ClassVar

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.layers.factories import Act, Conv, Norm, Pool
from torch import nn

from search_spaces._registry import block_info, register_backbone
from search_spaces._spec import MAX_DEPTH, ArchSpec


def _double_conv(spatial_dims: int, in_channels: int, out_channels: int, norm: str) -> nn.Module:
    return nn.Sequential(
        Convolution(spatial_dims, in_channels, out_channels, kernel_size=3, norm=norm, act="relu"),
        Convolution(spatial_dims, out_channels, out_channels, kernel_size=3, norm=norm, act="relu"),
    )


class _Site(nn.Module):
    """One attention site: the spec's block, or nothing. Passes the gating signal on if needed."""

    def __init__(
        self, spec: ArchSpec, placement: str, level: int, gate_channels: int | None, *, build: bool = True
    ) -> None:
        super().__init__()
        self.block: nn.Module | None = None
        self.uses_gate = False
        #: The canonical name of the block here ("" when empty): GFF may replace a concatenation.
        self.name = ""
        for att in spec.mechanisms if build else ():  # the spec guarantees at most one block per site
            if level in att.levels(placement):
                info = block_info(att.block)
                options = dict(att.options)
                self.uses_gate = info.uses_gate(options)
                extra = {"gate_channels": gate_channels} if self.uses_gate else {}
                self.block = info.factory(spec.spatial_dims, spec.channels[level], **options, **extra)
                self.name = att.block

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        if self.block is None:
            return x
        return self.block(x, gate) if self.uses_gate else self.block(x)


class EncoderDecoder(nn.Module):
    """A U-shaped network whose depth and widths come from ``spec.channels``.

    Level ``l`` of the encoder holds ``channels[l]`` features at ``1 / 2**(l + level_offset)``
    resolution (``level_offset`` is 0 for the U-Nets; 1 for a stem that halves the input first); the
    last level is the bottleneck. Attention sites, each present only if the spec places its block
    there: ``encoder`` (on an encoder stage's output, before it feeds the skip and the next stage),
    ``bottleneck``, ``skip`` (on the skip feature before concatenation; gating blocks receive the
    coarser decoder feature) and ``decoder`` (on a decoder stage's output).
    Subclasses choose the stages. Input ``(B, in_channels, *spatial)`` with every spatial size
    divisible by ``size_multiple(depth)``; output ``(B, out_channels, *spatial)`` logits.

    With ``spec.deep_supervision = k`` the decoder features at ``1/2, ..., 1/2**k`` resolution each
    get a 1x1 auxiliary head; in training mode ``forward`` returns ``(main, aux_1, ..., aux_k)``,
    ``aux_i`` at ``1/2**i`` resolution; in eval mode the main logits only.
    """

    #: Level ``l`` is at ``1 / 2**(l + level_offset)`` resolution.
    level_offset: ClassVar[int] = 0
    #: At most this many levels (``resnet34``: a stem and four residual stages).
    max_depth: ClassVar[int] = MAX_DEPTH
    levels_note: ClassVar[str] = "its stages"
    #: Max-pool between encoder levels (False: the stages down-sample themselves).
    pool_between_levels: ClassVar[bool] = True
    #: Whether a ``gff`` block at a skip replaces the concatenation (AF-Net): its output, which already
    #: carries the up-sampled coarser feature, is the decoder stage's only input (C, not 2C, channels).
    gff_replaces_concat: ClassVar[bool] = False
    #: Whether the ``encoder`` placement also exists at the deepest level (inside its last block).
    encoder_site_at_bottleneck: ClassVar[bool] = False

    @classmethod
    def level_widths(cls, base: int, depth: int) -> tuple[int, ...]:
        """The ``channels`` a search space gives this backbone for a base width: doubling per level."""
        return tuple(base * 2**level for level in range(depth))

    @classmethod
    def size_multiple(cls, depth: int) -> int:
        """What every spatial input size must be divisible by at ``depth`` levels."""
        return int(2 ** (depth - 1 + cls.level_offset))

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        dims, chans = spec.spatial_dims, spec.channels
        depth = len(chans)
        self.spec = spec
        self.encoder = nn.ModuleList(
            self.encoder_stage(spec, spec.in_channels if level == 0 else chans[level - 1], chans[level], level=level)
            for level in range(depth)
        )
        self.pool = Pool[Pool.MAX, dims](kernel_size=2)
        skips = range(depth - 1)
        self.encoder_attention = nn.ModuleList(self.encoder_site(spec, lvl) for lvl in skips)
        self.bottleneck_attention = _Site(spec, "bottleneck", depth - 1, None)
        self.skip_attention = nn.ModuleList(_Site(spec, "skip", lvl, chans[lvl + 1]) for lvl in skips)
        self.fused = tuple(self.gff_replaces_concat and self.skip_attention[lvl].name == "gff" for lvl in skips)
        transpose = Conv[Conv.CONVTRANS, dims]
        self.up = nn.ModuleList(
            nn.Identity() if self.fused[lvl] else transpose(chans[lvl + 1], chans[lvl], kernel_size=2, stride=2)
            for lvl in skips
        )
        self.decoder = nn.ModuleList(
            self.decoder_stage(spec, chans[lvl] if self.fused[lvl] else 2 * chans[lvl], chans[lvl]) for lvl in skips
        )
        self.decoder_attention = nn.ModuleList(_Site(spec, "decoder", lvl, None) for lvl in skips)
        self.to_full_resolution, head_width = self.final_stage(spec)
        self.head = Conv[Conv.CONV, dims](head_width, spec.out_channels, kernel_size=1)
        if spec.deep_supervision:  # created last: a k = 0 network is initialised exactly as before
            self.aux_heads = nn.ModuleList(
                Conv[Conv.CONV, dims](chans[i - self.level_offset], spec.out_channels, kernel_size=1)
                for i in range(1, spec.deep_supervision + 1)
            )

    def encoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int, *, level: int) -> nn.Module:
        return _double_conv(spec.spatial_dims, in_channels, out_channels, spec.norm)

    def encoder_site(self, spec: ArchSpec, level: int) -> nn.Module:
        """The ``encoder`` attention site on level ``level``'s output (empty if a stage holds it inside)."""
        return _Site(spec, "encoder", level, None)

    def decoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int) -> nn.Module:
        return _double_conv(spec.spatial_dims, in_channels, out_channels, spec.norm)

    def final_stage(self, spec: ArchSpec) -> tuple[nn.Module | None, int]:
        """What takes decoder level 0 to full resolution (None: it is there already), and its width."""
        return None, spec.channels[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        depth = len(self.encoder)
        factor = self.size_multiple(depth)
        if any(size % factor for size in x.shape[2:]):
            raise ValueError(
                f"input spatial size {tuple(x.shape[2:])} must be divisible by {factor} for a {depth}-level backbone"
            )
        features = []
        for level, stage in enumerate(self.encoder):
            if level > 0 and self.pool_between_levels:
                x = self.pool(x)
            x = stage(x)
            if level < depth - 1:
                x = self.encoder_attention[level](x)
                features.append(x)
        x = self.bottleneck_attention(x)
        decoded: dict[int, torch.Tensor] = {}
        for level in reversed(range(depth - 1)):
            skip = self.skip_attention[level](features[level], x)
            if self.fused[level]:
                x = self.decoder[level](skip)
            else:
                x = self.decoder[level](torch.cat([skip, self.up[level](x)], dim=1))
            x = self.decoder_attention[level](x)
            decoded[level] = x
        if self.to_full_resolution is not None:
            x = self.to_full_resolution(x)
        main = self.head(x)
        if not (self.training and self.spec.deep_supervision):
            return main
        return (main, *(head(decoded[i - self.level_offset]) for i, head in enumerate(self.aux_heads, start=1)))


@register_backbone("unet")
class UNet(EncoderDecoder):
    """U-Net (Ronneberger et al.): two 3x3 conv–norm–ReLU layers per level, max-pool down, transposed-conv up."""


@register_backbone("resunet")
class ResUNet(EncoderDecoder):
    """A residual encoder (AF-Net style): each encoder level is a two-convolution residual unit
    (MONAI ``ResidualUnit``, 1x1 projection where the width changes); U-Net decoder."""

    def encoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int, *, level: int) -> nn.Module:
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

    def encoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int, *, level: int) -> nn.Module:
        return _DenseBlock(spec.spatial_dims, in_channels, out_channels, spec.norm)

    def decoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int) -> nn.Module:
        return _DenseBlock(spec.spatial_dims, in_channels, out_channels, spec.norm)
