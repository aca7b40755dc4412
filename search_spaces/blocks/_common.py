"""Helpers shared by the attention blocks: argument checks and dimension-generic layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Norm
from torch import nn

from search_spaces._errors import SpecError


def check_geometry(block: str, spatial_dims: int, channels: int) -> None:
    """Reject spatial_dims other than 2/3 and non-positive channel counts, naming the argument."""
    if spatial_dims not in (2, 3):
        raise SpecError(f"{block}: spatial_dims={spatial_dims!r} is not valid; expected 2 or 3")
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise SpecError(f"{block}: channels={channels!r} is not valid; expected a positive integer")


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    dilation: int = 1,
    bias: bool = True,
) -> nn.Module:
    """A same-padding convolution of the right dimensionality."""
    conv_type = Conv[Conv.CONV, spatial_dims]
    padding = dilation * (kernel_size // 2)
    return conv_type(in_channels, out_channels, kernel_size=kernel_size, padding=padding, dilation=dilation, bias=bias)


def batch_norm(spatial_dims: int, channels: int) -> nn.Module:
    return Norm[Norm.BATCH, spatial_dims](channels)


def global_avg(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *spatial) → (B, C, 1, …)``: mean over every spatial axis."""
    return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


def global_max(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *spatial) → (B, C, 1, …)``: max over every spatial axis."""
    return x.flatten(2).amax(dim=2).reshape(*x.shape[:2], *([1] * (x.ndim - 2)))


def resize_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Interpolate ``x`` to the spatial size of ``reference`` (nearest-linear as the dims allow)."""
    if x.shape[2:] == reference.shape[2:]:
        return x
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, size=reference.shape[2:], mode=mode, align_corners=False)


def reduced(channels: int, reduction: int) -> int:
    """Hidden width of a bottleneck MLP: ``channels // reduction``, but at least ``min(4, channels)``.

    A one-unit bottleneck behind a ReLU is dead for whole batches (timm floors its SE width too).
    """
    return max(min(4, channels), channels // reduction)


def channel_mlp(spatial_dims: int, channels: int, reduction: int) -> nn.Sequential:
    """The bottleneck MLP of channel attention (SE, CBAM) as 1x1 convolutions on pooled maps."""
    hidden = reduced(channels, reduction)
    return nn.Sequential(
        conv(spatial_dims, channels, hidden, 1), nn.ReLU(inplace=True), conv(spatial_dims, hidden, channels, 1)
    )


class QueryKeyValue(nn.Module):
    """1x1 projections to query/key (``max(1, C // 8)`` channels) and value (``C``), plus the
    learnable output scale ``γ`` initialised to 0 (DANet, CCNet), so the block starts as identity."""

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = conv(spatial_dims, channels, inner, 1)
        self.key = conv(spatial_dims, channels, inner, 1)
        self.value = conv(spatial_dims, channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.query(x), self.key(x), self.value(x)
