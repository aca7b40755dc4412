"""Test-time augmentation by flips (AF-Net): the prediction is the mean of the class probabilities
over flipped copies of the input, each flipped back.

AF-Net flips horizontally, vertically and diagonally (both axes at once) besides the identity; the
generalisation used here for any number of spatial axes is every subset of them: 4 passes in 2D,
8 in 3D (the identity, each axis, each pair, all three).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

#: ``none``: one forward pass; ``flips``: the mean over every combination of flips of the spatial axes.
TTA_MODES = ("none", "flips")


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the channels of ``(B, C, *spatial)`` logits; a one-channel (sigmoid) head gives ``[1 - p, p]``."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def flip_axes(spatial_dims: int) -> list[tuple[int, ...]]:
    """The axes of a batch ``(B, C, *spatial)`` each TTA pass flips, the identity first: in 2D
    ``()``, ``(2,)`` (vertical), ``(3,)`` (horizontal) and ``(2, 3)`` (diagonal)."""
    axes = range(2, 2 + spatial_dims)
    return [combo for r in range(spatial_dims + 1) for combo in itertools.combinations(axes, r)]


def flip_averaged(probabilities: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
    """The mean over ``flip_axes`` of ``probabilities(flip(batch))`` flipped back, for a function
    from a batch ``(B, C_in, *spatial)`` to class probabilities ``(B, C, *spatial)``."""
    passes = flip_axes(batch.ndim - 2)
    total: torch.Tensor | None = None
    for axes in passes:
        out = probabilities(torch.flip(batch, axes) if axes else batch).float()
        out = torch.flip(out, axes) if axes else out
        total = out if total is None else total + out
    assert total is not None  # the identity is always a pass
    return total / len(passes)


class FlipInferer(Inferer):
    """A MONAI inferer returning the flip-averaged class probabilities of ``inferer`` (or of a plain
    forward pass): what an exported bundle runs when its study evaluated with ``tta="flips"``."""

    def __init__(self, inferer: Inferer | None = None) -> None:
        super().__init__()
        self.inferer = inferer

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        def forward(x: torch.Tensor) -> torch.Tensor:
            logits = network(x) if self.inferer is None else self.inferer(x, network, *args, **kwargs)
            return class_probabilities(torch.as_tensor(logits))

        return flip_averaged(forward, inputs)
