"""Image-space attention (bilateral spatial attention paper): Swin blocks + conv + residual."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from monai.networks.nets.swin_unetr import BasicLayer
from torch import nn

from search_spaces._registry import register_block
from search_spaces.blocks._base import Mechanism
from search_spaces.blocks._common import check_geometry, conv

WINDOWS = (4, 8)
#: Swin blocks stacked: one regular + shifted pair by default; the bilateral paper stacks six.
DEPTHS = (2, 6)


@register_block("isam", options={"window": WINDOWS, "depth": DEPTHS})
class ImageSpaceAttention(Mechanism):
    """ISAM: MONAI Swin transformer blocks + a 3x3 convolution + a residual, ``x + conv(swin(x))``.

    ``depth`` blocks alternate regular and shifted windows (the bilateral paper stacks six).

    Windows larger than the feature map shrink to it (MONAI's rule). MONAI then takes the relative
    position bias of the shrunk window from the top-left of the full window's index, which pairs
    tokens with the wrong offsets on every axis but the first; here the index is rebuilt for the
    shrunk window, so two tokens always get the bias of their offset. Heads: ``gcd(C, 4)``.
    Input ``(B, C, *spatial)`` in 2D or 3D; output of the same shape.
    """

    kind = "residual"

    def __init__(self, spatial_dims: int, channels: int, *, window: int = 4, depth: int = 2) -> None:
        super().__init__()
        check_geometry("isam", spatial_dims, channels)
        self.swin = BasicLayer(
            dim=channels,
            depth=depth,
            num_heads=math.gcd(channels, 4),
            window_size=(window,) * spatial_dims,
            drop_path=[0.0] * depth,
            qkv_bias=True,
        )
        self.conv = conv(spatial_dims, channels, channels, 3)
        self.window = window

    def response(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        windows = tuple(min(self.window, size) for size in x.shape[2:])
        if windows == (self.window,) * len(windows):
            swin = self.swin(x.contiguous())
        else:
            with _bias_index(self.swin, relative_index(windows, self.window, x.device)):
                swin = self.swin(x.contiguous())
        result: torch.Tensor = self.conv(swin)
        return result


def relative_index(windows: tuple[int, ...], window: int, device: torch.device | None = None) -> torch.Tensor:
    """``(n, n)`` rows of the bias table (built for cubic windows of side ``window``) for each pair
    of tokens of a ``windows``-shaped window, row-major: offset ``Δ + window − 1`` per axis,
    combined with strides ``(2·window − 1)^(dims − 1 − axis)`` (MONAI's and Swin's layout)."""
    grids = torch.meshgrid(*(torch.arange(w, device=device) for w in windows), indexing="ij")
    coords = torch.stack(grids).flatten(1)  # (dims, n)
    offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)
    dims = len(windows)
    strides = [(2 * window - 1) ** (dims - 1 - axis) for axis in range(dims)]
    return sum(offsets[axis] * strides[axis] for axis in range(dims))


@contextmanager
def _bias_index(layer: nn.Module, index: torch.Tensor) -> Iterator[None]:
    """Give every window attention of ``layer`` ``index`` for the duration (restored afterwards, so
    the state dict keeps MONAI's full-window buffer)."""
    attentions = [m for m in layer.modules() if hasattr(m, "relative_position_index")]
    saved = [m.relative_position_index for m in attentions]
    try:
        for m in attentions:
            m.relative_position_index = index
        yield
    finally:
        for m, original in zip(attentions, saved, strict=True):
            m.relative_position_index = original
