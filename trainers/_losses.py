"""The papers' training losses by name, for binary (one sigmoid channel) and multi-class (softmax) heads.

Every loss is called as ``loss(logits, labels)`` with logits (B, C, *spatial) and integer labels
(B, 1, *spatial). C = 1 means a binary sigmoid head (labels 0/1); C ≥ 2 means softmax over C classes.

| name | loss | paper |
|---|---|---|
| ``dice`` | soft Dice (MONAI ``DiceLoss``) | |
| ``dice_ce`` | soft Dice over the foreground and the whole batch + cross-entropy (nnU-Net's form) | default |
| ``dice_ce_image`` | soft Dice over every class, per image, + cross-entropy (MONAI's defaults) | until 2026-12 |
| ``focal`` | focal loss, γ = 2 (MONAI ``FocalLoss``) | |
| ``tversky_ce`` | Tversky (α = 0.3 on false positives, β = 0.7 on false negatives) + cross-entropy | MPU-Net |
| ``bce_l2`` | (binary) cross-entropy + λ·Σ‖w‖² over the model's weights, λ = 1e-4 | AF-Net |
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss, FocalLoss, TverskyLoss
from torch import nn

from trainers._errors import DataError


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    return F.cross_entropy(logits, labels[:, 0].long())


def _monai_mode(channels: int) -> dict[str, Any]:
    """MONAI's activation flags: sigmoid on a single channel, softmax with one-hot targets otherwise."""
    return {"sigmoid": True} if channels == 1 else {"softmax": True, "to_onehot_y": True}


class _Monai(nn.Module):
    def __init__(self, inner: nn.Module, binary: bool) -> None:
        super().__init__()
        self.inner = inner
        self.binary = binary

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.inner(logits, labels.float() if self.binary else labels)


class TverskyCE(nn.Module):
    """Tversky + λ·cross-entropy, the MPU-Net hybrid (α weighs false positives, β false negatives)."""

    def __init__(self, channels: int, *, alpha: float = 0.3, beta: float = 0.7, ce_weight: float = 1.0) -> None:
        super().__init__()
        self.tversky = _Monai(TverskyLoss(alpha=alpha, beta=beta, **_monai_mode(channels)), channels == 1)
        self.ce_weight = ce_weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.tversky(logits, labels) + self.ce_weight * _cross_entropy(logits, labels)


class CrossEntropyL2(nn.Module):
    """(Binary) cross-entropy + λ·Σ‖w‖² over the weight tensors (not biases or norms), as in AF-Net."""

    def __init__(self, parameters: Callable[[], Iterable[torch.Tensor]], *, weight: float = 1e-4) -> None:
        super().__init__()
        self._parameters_of = parameters
        self.weight = weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        l2 = sum((w.pow(2).sum() for w in self._parameters_of() if w.ndim > 1), torch.zeros((), device=logits.device))
        return _cross_entropy(logits, labels) + self.weight * l2


@dataclass(frozen=True)
class LossInfo:
    name: str
    summary: str
    build: Callable[[int, Callable[[], Iterable[torch.Tensor]]], nn.Module]


LOSSES: dict[str, LossInfo] = {
    info.name: info
    for info in (
        LossInfo("dice", "soft Dice", lambda c, _: _Monai(DiceLoss(**_monai_mode(c)), c == 1)),
        LossInfo(
            "dice_ce",
            "soft Dice over the foreground classes and the whole batch + cross-entropy",
            lambda c, _: _Monai(DiceCELoss(**_monai_mode(c), include_background=c == 1, batch=True), c == 1),
        ),
        LossInfo(
            "dice_ce_image",
            "soft Dice over every class, per image + cross-entropy (MONAI DiceCELoss's defaults)",
            lambda c, _: _Monai(DiceCELoss(**_monai_mode(c)), c == 1),
        ),
        LossInfo(
            "focal",
            "focal loss, gamma 2",
            lambda c, _: _Monai(FocalLoss(gamma=2.0, use_softmax=c > 1, to_onehot_y=c > 1), c == 1),
        ),
        LossInfo("tversky_ce", "Tversky (0.3, 0.7) + cross-entropy (MPU-Net)", lambda c, _: TverskyCE(c)),
        LossInfo("bce_l2", "cross-entropy + 1e-4 * sum of squared weights (AF-Net)", lambda c, p: CrossEntropyL2(p)),
    )
}


def create_loss(name: str, *, channels: int, model: nn.Module | None = None) -> nn.Module:
    """The loss ``name`` for a head with ``channels`` output channels (1: sigmoid; ≥ 2: softmax)."""
    if name not in LOSSES:
        close = difflib.get_close_matches(name, LOSSES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"train.loss: {name!r} is not a known loss{hint}; expected one of {', '.join(LOSSES)}")
    if not isinstance(channels, int) or channels < 1:
        raise DataError(f"train.loss: a head needs at least one output channel, got {channels!r}")
    if name == "bce_l2" and model is None:
        raise DataError("train.loss: 'bce_l2' penalises the model's weights; pass the model")
    parameters: Callable[[], Iterable[torch.Tensor]] = (lambda: model.parameters()) if model is not None else tuple
    return LOSSES[name].build(channels, parameters)
