"""The papers' training losses by name, for binary (one sigmoid channel) and multi-class (softmax) heads.

Every loss is called as ``loss(logits, labels)`` with logits (B, C, *spatial) and integer labels
(B, 1, *spatial). C = 1 means a binary sigmoid head (labels 0/1); C ≥ 2 means softmax over C classes.
A deep-supervised network (``ArchSpec.deep_supervision``) returns a tuple of logits in training,
full resolution first; ``DeepSupervision`` sums the loss over them (labels down-sampled to each).

| name | loss | paper |
|---|---|---|
| ``dice`` | soft Dice (MONAI ``DiceLoss``) | |
| ``dice_ce`` | soft Dice over the foreground and the whole batch + cross-entropy (nnU-Net's form) | default |
| ``dice_ce_image`` | soft Dice over every class, per image, + cross-entropy (MONAI's defaults) | until 2026-12 |
| ``focal`` | focal loss, γ = 2 (MONAI ``FocalLoss``) | |
| ``tversky_ce`` | Tversky over the foreground (α = 0.3 on FP, β = 0.7 on FN) + class-balanced cross-entropy | MPU-Net |
| ``bce_l2`` | (binary) cross-entropy + λ·Σ‖w‖² over the model's weights, λ = ``l2_weight`` | AF-Net |
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
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


def balanced_class_weights(frequencies: torch.Tensor) -> torch.Tensor:
    """Class weights inverse to the training labels' class frequencies (floored at 1e-4)."""
    return 1.0 / frequencies.double().clamp_min(1e-4)


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy with per-class weights ``w``: ``Σ_i w[y_i] ℓ_i / Σ_i w[y_i]`` over the voxels.

    With ``w`` inverse to the class frequencies this is, in expectation, the mean over classes of
    each class's mean cross-entropy. A sigmoid head is weighted the same way (``w[0]``, ``w[1]``).
    ``weights=None``: the plain mean.
    """
    target = labels[:, 0].long()
    if logits.shape[1] == 1:
        each = F.binary_cross_entropy_with_logits(logits[:, 0], target.to(logits.dtype), reduction="none")
    else:
        each = F.cross_entropy(logits, target, reduction="none")
    if weights is None:
        return each.mean()
    w = weights.to(device=logits.device, dtype=each.dtype)[target]
    return (w * each).sum() / w.sum()


class TverskyCE(nn.Module):
    """MPU-Net's hybrid (eq. 19): Tversky over the foreground classes + class-balanced cross-entropy.

    ``T = 1 − TP / (TP + α·FP + β·FN)`` from soft counts over the whole batch, per foreground class
    and averaged (α weighs false positives, β false negatives: β > α penalises missed foreground
    more). The background class is left out: there FN and FP swap roles and dilute the asymmetry.
    The cross-entropy weighs each class inversely to its frequency in the training labels
    (``frequencies``; ``None``: unweighted).
    """

    def __init__(
        self,
        channels: int,
        *,
        frequencies: torch.Tensor | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        ce_weight: float = 1.0,
    ) -> None:
        super().__init__()
        mode = _monai_mode(channels)
        tversky = TverskyLoss(alpha=alpha, beta=beta, include_background=channels == 1, batch=True, **mode)
        self.tversky = _Monai(tversky, channels == 1)
        self.ce_weight = ce_weight
        weights = balanced_class_weights(frequencies) if frequencies is not None else None
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ce = balanced_cross_entropy(logits, labels, self.class_weights)
        return self.tversky(logits, labels) + self.ce_weight * ce


#: λ of ``bce_l2`` unless the run says otherwise: L = BCE + λΣ‖w‖² has the gradient 2λw, so 5e-5
#: equals the SGD weight decay of 1e-4 AF-Net trains with. AF-Net's text says λ = 1 (see the README).
DEFAULT_L2_WEIGHT = 5e-5


class CrossEntropyL2(nn.Module):
    """(Binary) cross-entropy + λ·Σ‖w‖² over the weight tensors (not biases or norms), as in AF-Net
    eq. 8. The optimiser's own weight decay is switched off for this loss (``make_optimizer``)."""

    def __init__(self, parameters: Callable[[], Iterable[torch.Tensor]], *, weight: float = DEFAULT_L2_WEIGHT) -> None:
        super().__init__()
        self._parameters_of = parameters
        self.weight = weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        l2 = sum((w.pow(2).sum() for w in self._parameters_of() if w.ndim > 1), torch.zeros((), device=logits.device))
        return _cross_entropy(logits, labels) + self.weight * l2


def deep_supervision_weights(outputs: int) -> list[float]:
    """nnU-Net's weights for ``outputs`` logits, full resolution first: halving per level, sum 1."""
    raw = [0.5**level for level in range(outputs)]
    return [w / sum(raw) for w in raw]


def downsample_labels(labels: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Integer labels (B, 1, *spatial) at ``size`` by nearest-neighbour sampling (nnU-Net's order 0)."""
    if tuple(labels.shape[2:]) == tuple(size):
        return labels
    return F.interpolate(labels.float(), size=tuple(size), mode="nearest").to(labels.dtype)


class DeepSupervision(nn.Module):
    """``Σ_m w_m · loss(logits_m, labels↓m)`` over a tuple of logits (MPU-Net eq. 18-19), with
    ``deep_supervision_weights``; a plain tensor is passed to ``loss`` as it is."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        if isinstance(logits, torch.Tensor):
            return self.loss(logits, labels)
        weights = deep_supervision_weights(len(logits))
        terms = [
            w * self.loss(out, downsample_labels(labels, out.shape[2:])) for w, out in zip(weights, logits, strict=True)
        ]
        return torch.stack(terms).sum()


@dataclass(frozen=True)
class LossContext:
    """What a loss may need besides the logits: the head's width, the model's weights (``bce_l2``),
    the training labels' class frequencies (``tversky_ce``) and λ of ``bce_l2``."""

    channels: int
    parameters: Callable[[], Iterable[torch.Tensor]]
    frequencies: torch.Tensor | None = None
    l2_weight: float = DEFAULT_L2_WEIGHT


@dataclass(frozen=True)
class LossInfo:
    name: str
    summary: str
    build: Callable[[LossContext], nn.Module]


def _dice_ce(c: LossContext) -> nn.Module:
    return _Monai(
        DiceCELoss(**_monai_mode(c.channels), include_background=c.channels == 1, batch=True), c.channels == 1
    )


LOSSES: dict[str, LossInfo] = {
    info.name: info
    for info in (
        LossInfo("dice", "soft Dice", lambda c: _Monai(DiceLoss(**_monai_mode(c.channels)), c.channels == 1)),
        LossInfo("dice_ce", "soft Dice over the foreground classes and the whole batch + cross-entropy", _dice_ce),
        LossInfo(
            "dice_ce_image",
            "soft Dice over every class, per image + cross-entropy (MONAI DiceCELoss's defaults)",
            lambda c: _Monai(DiceCELoss(**_monai_mode(c.channels)), c.channels == 1),
        ),
        LossInfo(
            "focal",
            "focal loss, gamma 2",
            lambda c: _Monai(
                FocalLoss(gamma=2.0, use_softmax=c.channels > 1, to_onehot_y=c.channels > 1), c.channels == 1
            ),
        ),
        LossInfo(
            "tversky_ce",
            "Tversky (0.3, 0.7) over the foreground + class-balanced cross-entropy (MPU-Net)",
            lambda c: TverskyCE(c.channels, frequencies=c.frequencies),
        ),
        LossInfo(
            "bce_l2",
            "cross-entropy + l2_weight * sum of squared weights, no optimiser weight decay (AF-Net)",
            lambda c: CrossEntropyL2(c.parameters, weight=c.l2_weight),
        ),
    )
}


def create_loss(
    name: str,
    *,
    channels: int,
    model: nn.Module | None = None,
    frequencies: torch.Tensor | None = None,
    l2_weight: float = DEFAULT_L2_WEIGHT,
) -> nn.Module:
    """The loss ``name`` for a head with ``channels`` output channels (1: sigmoid; ≥ 2: softmax),
    wrapped in ``DeepSupervision`` so it also takes a deep-supervised network's tuple of logits.

    ``frequencies``: the training labels' class shares (``tversky_ce`` weighs its cross-entropy by
    them); ``l2_weight``: λ of ``bce_l2``."""
    if name not in LOSSES:
        close = difflib.get_close_matches(name, LOSSES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"train.loss: {name!r} is not a known loss{hint}; expected one of {', '.join(LOSSES)}")
    if not isinstance(channels, int) or channels < 1:
        raise DataError(f"train.loss: a head needs at least one output channel, got {channels!r}")
    if name == "bce_l2" and model is None:
        raise DataError("train.loss: 'bce_l2' penalises the model's weights; pass the model")
    parameters: Callable[[], Iterable[torch.Tensor]] = (lambda: model.parameters()) if model is not None else tuple
    context = LossContext(channels, parameters, frequencies, l2_weight)
    return DeepSupervision(LOSSES[name].build(context))
