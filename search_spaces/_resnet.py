"""AF-Net's encoder: ResNet-34 (He et al.) as the encoder of a U-shaped network, in 2D and 3D.

Module names inside the encoder mirror torchvision's ``resnet34`` (``conv1``, ``bn1``, the blocks'
``conv1``/``bn1``/``conv2``/``bn2``/``downsample.0``/``downsample.1``), so an ImageNet state dict maps
onto it by a fixed rename (``nas train --init ... --init-map torchvision-resnet``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Norm, Pool
from torch import nn

from search_spaces._backbones import EncoderDecoder, _Site
from search_spaces._registry import register_backbone
from search_spaces._spec import ArchSpec

#: BasicBlocks in ResNet-34's four residual stages (torchvision ``layer1`` .. ``layer4``).
STAGE_BLOCKS = (3, 4, 6, 3)


def _norm(norm: str, spatial_dims: int, channels: int) -> nn.Module:
    # Affine in both cases: the ImageNet BN scale and shift are what transfer learning carries over.
    if norm == "batch":
        return Norm[Norm.BATCH, spatial_dims](channels)
    return Norm[Norm.INSTANCE, spatial_dims](channels, affine=True)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: conv3x3–norm–ReLU–conv3x3–norm, then the attention site (if any), then the
    residual addition (identity, or a strided 1x1 conv + norm where the shape changes) and ReLU.

    The attention sits where SE-ResNet puts SE and AF-Net its DA-block: on the residual branch,
    after the second norm and before the addition. Input ``(B, in_channels, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        norm: str,
        attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.conv1 = conv(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(norm, spatial_dims, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = _norm(norm, spatial_dims, out_channels)
        self.attention = attention
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                conv(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                _norm(norm, spatial_dims, out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.attention is not None:
            out = self.attention(out)
        result: torch.Tensor = self.relu(out + identity)
        return result


class _Stem(nn.Module):
    """ResNet stem without its max-pool: 7x7 conv stride 2, norm, ReLU (output at 1/2 resolution)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = Conv[Conv.CONV, spatial_dims](
            in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False
        )
        self.bn1 = _norm(norm, spatial_dims, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.relu(self.bn1(self.conv1(x)))
        return result


class _ResidualStage(nn.Module):
    """One of ResNet-34's four stages: (the stem's 3x3 max-pool, stride 2, before the first) and
    ``blocks`` BasicBlocks, the first strided (stages 2-4) or projecting where the width changes."""

    def __init__(self, spec: ArchSpec, level: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        dims = spec.spatial_dims
        first = level == 1
        self.pool = Pool[Pool.MAX, dims](kernel_size=3, stride=2, padding=1) if first else None
        count = STAGE_BLOCKS[level - 1]
        self.blocks = nn.Sequential(
            *(
                BasicBlock(
                    dims,
                    in_channels if index == 0 else out_channels,
                    out_channels,
                    stride=1 if first or index > 0 else 2,
                    norm=spec.norm,
                    # The stage's encoder attention: inside its last block, before the addition.
                    attention=_Site(spec, "encoder", level, None) if index == count - 1 else None,
                )
                for index in range(count)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        result: torch.Tensor = self.blocks(x)
        return result


@register_backbone("resnet34")
class ResNet34(EncoderDecoder):
    """AF-Net's encoder: ResNet-34's stem and its four stages of 3, 4, 6 and 3 BasicBlocks, with a
    U-Net decoder (transposed conv up, concatenation, two 3x3 conv–norm–ReLU) back to full resolution.

    Levels: ``channels[0]`` is the stem (7x7 conv stride 2: 1/2 resolution), ``channels[1..4]`` the
    stages ``layer1`` .. ``layer4`` at 1/4 .. 1/32 (the max-pool opens ``layer1``); torchvision's
    widths are ``(64, 64, 128, 256, 512)``. Fewer than 5 levels keep the first stages (as
    segmentation-models' ``encoder_depth``). Skips: the stem and ``layer1`` .. ``layer3``; the
    bottleneck is the deepest stage. After decoder level 0 (1/2) a transposed conv to half its width
    and one 3x3 conv–norm–ReLU reach full resolution. Input sizes divisible by ``2 ** depth``.

    Attention: ``encoder`` at level 0 on the stem's output; at levels ``l ≥ 1`` inside the last
    BasicBlock of stage ``l``, on the residual branch before the addition (AF-Net's DA-block,
    SE-ResNet's SE), the deepest stage included. A ``gff`` block at a skip replaces the
    concatenation, as in AF-Net: the decoder stage takes its ``C``-channel output alone.
    """

    level_offset: ClassVar[int] = 1
    max_depth: ClassVar[int] = 1 + len(STAGE_BLOCKS)
    levels_note: ClassVar[str] = "a stem and 4 residual stages"
    pool_between_levels: ClassVar[bool] = False
    gff_replaces_concat: ClassVar[bool] = True
    encoder_site_at_bottleneck: ClassVar[bool] = True

    @classmethod
    def level_widths(cls, base: int, depth: int) -> tuple[int, ...]:
        """ResNet's widths: the stem and ``layer1`` at ``base``, then doubling (64 → 64-64-128-256-512)."""
        return tuple(base * 2 ** max(0, level - 1) for level in range(depth))

    def encoder_stage(self, spec: ArchSpec, in_channels: int, out_channels: int, *, level: int) -> nn.Module:
        if level == 0:
            return _Stem(spec.spatial_dims, in_channels, out_channels, spec.norm)
        return _ResidualStage(spec, level, in_channels, out_channels)

    def encoder_site(self, spec: ArchSpec, level: int) -> nn.Module:
        # The stem has no residual addition: its site stays on its output; the stages hold theirs.
        return _Site(spec, "encoder", level, None, build=level == 0)

    def final_stage(self, spec: ArchSpec) -> tuple[nn.Module | None, int]:
        dims, width = spec.spatial_dims, spec.channels[0]
        half = max(1, width // 2)
        up = Conv[Conv.CONVTRANS, dims](width, half, kernel_size=2, stride=2)
        return nn.Sequential(up, Convolution(dims, half, half, kernel_size=3, norm=spec.norm, act="relu")), half
