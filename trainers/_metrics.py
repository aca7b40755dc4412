"""Segmentation metrics of the papers, per class and mean, with an optional field-of-view mask.

Confusion-matrix metrics (Dice, IoU, precision, recall, specificity, accuracy, MCC) are computed per
image with MONAI's confusion-matrix functions and averaged over the images where they are defined;
AUC pools every pixel of every image (as the DRIVE literature reports it): the Mann-Whitney
statistic, ties counting one half (what MONAI's ``compute_roc_auc`` computes, here in one sort
rather than a Python loop over the pixels); MAE (the bilateral paper's) is the mean absolute
difference between a class's probability map and its binary reference, per image, then averaged.
HD95 is MONAI's 95th-percentile Hausdorff distance per image, in voxels (``hd95``) and in the units
of the image spacing (``hd95_mm``: millimetres for NIfTI data, whose headers give the spacing;
without one, 1 per axis).
Where the reference of a class is present but the prediction is empty, HD95 is the image diagonal
rather than undefined, so that missing a structure is not rewarded.

Only the foreground classes count (class 0 is the background), except in ``miou``: the per-image
mean IoU over every class, background included (the mIoU of the semantic-segmentation literature),
which describes the whole label map and so appears in ``mean`` only. With a field-of-view mask,
pixels outside it are ignored by every metric.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from monai.metrics import (
    compute_confusion_matrix_metric,
    compute_hausdorff_distance,
    get_confusion_matrix,
)

#: Metric names in the order they are reported; ``dice`` is the search objective.
METRIC_NAMES: tuple[str, ...] = (
    "dice",
    "iou",
    "miou",
    "precision",
    "recall",
    "specificity",
    "accuracy",
    "mcc",
    "auc",
    "mae",
    "hd95",
    "hd95_mm",
)
#: Metrics of the whole label map (every class at once): in ``SegmentationMetrics.mean`` only.
IMAGE_METRICS: tuple[str, ...] = ("miou",)
#: Metrics of one foreground class: in ``per_class`` and, averaged over the classes, in ``mean``.
CLASS_METRICS: tuple[str, ...] = tuple(n for n in METRIC_NAMES if n not in IMAGE_METRICS)
_MONAI_NAMES = {
    "dice": "f1 score",
    "iou": "threat score",
    "precision": "precision",
    "recall": "sensitivity",
    "specificity": "specificity",
    "accuracy": "accuracy",
    "mcc": "matthews correlation coefficient",
}

#: One spacing for every image, one per image, or None (1 per axis).
Spacing = Sequence[float] | Sequence[Sequence[float]] | None


@dataclass(frozen=True)
class SegmentationMetrics:
    """Per foreground class (``"1"``, ``"2"``, …) every name of ``CLASS_METRICS``; in ``mean``, their
    mean over the classes and the ``IMAGE_METRICS``: every name of ``METRIC_NAMES``."""

    per_class: Mapping[str, Mapping[str, float]]
    mean: Mapping[str, float]
    images: int

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": dict(self.mean),
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "images": self.images,
        }


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    index = labels.long()
    if index.min() < 0 or index.max() >= num_classes:
        raise ValueError(f"labels hold values outside 0..{num_classes - 1}: {sorted(set(index.unique().tolist()))}")
    shape = (index.shape[0], num_classes, *index.shape[2:])
    return torch.zeros(shape, dtype=torch.float32).scatter_(1, index, 1.0)


def per_image_spacing(spacing: Spacing, images: int, spatial_dims: int) -> list[tuple[float, ...]]:
    """``spacing`` as one tuple of ``spatial_dims`` positive numbers per image (1 per axis when None)."""
    if spacing is None:
        return [(1.0,) * spatial_dims] * images
    if all(isinstance(s, int | float) for s in spacing):
        each = [tuple(float(cast(float, s)) for s in spacing)] * images
    else:
        each = [tuple(float(v) for v in cast(Sequence[float], s)) for s in spacing]
        if len(each) != images:
            raise ValueError(f"spacing: {len(each)} spacings for {images} images")
    for s in each:
        if len(s) != spatial_dims or not all(v > 0 for v in s):
            raise ValueError(f"spacing: {s} is not {spatial_dims} positive numbers (one per spatial axis)")
    return each


def segmentation_metrics(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    spacing: Spacing = None,
    hd95: bool = True,
) -> SegmentationMetrics:
    """Metrics of predicted class probabilities against integer labels.

    ``probabilities``: (B, C, *spatial) with C ≥ 2 (softmax over classes; a binary sigmoid output is
    passed as ``[1 - p, p]``). ``labels``: (B, 1, *spatial) class indices. ``mask``: (B, 1, *spatial),
    true inside the field of view. ``spacing``: the voxel size along each spatial axis, one for all
    images or one per image (``hd95_mm`` is in its units). The prediction is the arg-max class.
    """
    _check_shapes(probabilities, labels)
    num_classes = probabilities.shape[1]
    images = probabilities.shape[0]
    spacings = per_image_spacing(spacing, images, probabilities.ndim - 2)
    probabilities = probabilities.detach().float().cpu()
    confusion, truth, predicted, inside = _confusion(probabilities, labels, mask)
    weight = inside.float()
    counted = weight.flatten(1).sum(dim=1)  # (B,) pixels inside the field of view
    per_class: dict[str, dict[str, float]] = {}
    for c in range(1, num_classes):
        values: dict[str, float] = {}
        for name, monai_name in _MONAI_NAMES.items():
            per_image = compute_confusion_matrix_metric(monai_name, confusion[:, c, :])
            values[name] = _nanmean([float(v) for v in per_image.flatten()])
        scores = probabilities[:, c][inside[:, 0]]
        targets = truth[:, c][inside[:, 0]]
        values["auc"] = roc_auc(scores.flatten(), targets.flatten())
        error = ((probabilities[:, c] - truth[:, c]).abs() * weight[:, 0]).flatten(1).sum(dim=1)
        values["mae"] = _nanmean([float(e / n) if n > 0 else math.nan for e, n in zip(error, counted, strict=True)])
        voxels, physical = _hd95(predicted, truth, inside, c, spacings) if hd95 else (math.nan, math.nan)
        values["hd95"], values["hd95_mm"] = voxels, physical
        per_class[str(c)] = {name: values[name] for name in CLASS_METRICS}
    # mIoU: per image, the mean IoU over the classes present in its prediction or reference.
    iou = torch.stack(
        [compute_confusion_matrix_metric("threat score", confusion[:, c, :]).flatten() for c in range(num_classes)],
        dim=1,
    )  # (B, C)
    image_values = {"miou": _nanmean([_nanmean([float(v) for v in row]) for row in iou])}
    mean = {
        name: image_values[name] if name in IMAGE_METRICS else _nanmean([per_class[c][name] for c in per_class])
        for name in METRIC_NAMES
    }
    return SegmentationMetrics(per_class=per_class, mean=mean, images=images)


def _check_shapes(probabilities: torch.Tensor, labels: torch.Tensor) -> None:
    if probabilities.ndim < 4 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be (B, C>=2, *spatial); got {tuple(probabilities.shape)}")
    if labels.shape != (probabilities.shape[0], 1, *probabilities.shape[2:]):
        raise ValueError(
            f"labels must be {(probabilities.shape[0], 1, *probabilities.shape[2:])}; got {tuple(labels.shape)}"
        )


def _confusion(
    probabilities: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(confusion (B, C, 4) as MONAI orders it, one-hot truth, one-hot arg-max prediction, the
    boolean field of view) of CPU float ``probabilities`` against ``labels``."""
    num_classes = probabilities.shape[1]
    truth = _one_hot(labels.cpu(), num_classes)
    # arg-max over a contiguous last axis (a copy with the classes last): over the strided class axis,
    # argmax(dim=1) took 0.45-1.1 s for DRIVE's 20 test images of 2 × 592 × 576 (same first-maximum rule)
    classes_last = probabilities.movedim(1, -1).contiguous()
    predicted = _one_hot(classes_last.argmax(dim=-1).unsqueeze(1), num_classes)
    inside = torch.ones_like(labels, dtype=torch.bool) if mask is None else mask.cpu().bool()
    if inside.shape != labels.shape:
        raise ValueError(f"mask must be {tuple(labels.shape)}; got {tuple(inside.shape)}")
    weight = inside.float()
    # Pixels outside the field of view become (prediction 0, truth 0): true negatives, taken back next.
    confusion = get_confusion_matrix(predicted * weight, truth * weight, include_background=True)  # (B, C, 4)
    outside = (~inside).flatten(1).sum(dim=1).float()  # (B,)
    confusion[..., 2] -= outside[:, None]
    return confusion, truth, predicted, inside


def foreground_dice(
    probabilities: torch.Tensor, labels: torch.Tensor, *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The Dice of each image and foreground class, (B, C - 1), NaN where a class is in neither the
    prediction nor the reference: ``segmentation_metrics``' ``dice`` before it is averaged, without
    the other metrics (what validating each epoch needs)."""
    _check_shapes(probabilities, labels)
    confusion, *_ = _confusion(probabilities.detach().float().cpu(), labels, mask)
    return torch.stack(
        [
            compute_confusion_matrix_metric(_MONAI_NAMES["dice"], confusion[:, c, :]).flatten()
            for c in range(1, confusion.shape[1])
        ],
        dim=1,
    )


def roc_auc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """The area under the ROC curve of 1-D ``scores`` for 1-D binary ``targets``: the share of
    (positive, negative) pairs that the scores order right, a tie counting one half; NaN with one
    class only. Exact: every count is a multiple of 1/2 below 2**53, summed in float64."""
    positive = targets.flatten().bool()
    values, index, counts = torch.unique(scores.flatten(), sorted=True, return_inverse=True, return_counts=True)
    pos = torch.bincount(index, weights=positive.double(), minlength=len(values))  # positives at each score
    neg = counts.double() - pos
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan  # undefined with one class only
    below = torch.cumsum(neg, 0) - neg  # negatives scoring strictly lower
    return float((pos * (below + neg / 2)).sum()) / (n_pos * n_neg)


def _hausdorff95(p: torch.Tensor, t: torch.Tensor, spacing: Sequence[float] | None) -> float:
    pair_p = torch.cat([~p, p], dim=1).float()
    pair_t = torch.cat([~t, t], dim=1).float()
    with warnings.catch_warnings():  # MONAI 1.6 warns about its own internal call to get_mask_edges
        warnings.simplefilter("ignore", FutureWarning)
        value = compute_hausdorff_distance(
            pair_p, pair_t, include_background=False, percentile=95, spacing=list(spacing) if spacing else None
        )
    return float(value.flatten()[0])


def _hd95(
    predicted: torch.Tensor,
    truth: torch.Tensor,
    inside: torch.Tensor,
    c: int,
    spacings: Sequence[tuple[float, ...]],
) -> tuple[float, float]:
    """Class ``c``'s HD95 averaged over the images that hold it: in voxels, and in spacing units."""
    voxels, physical = [], []
    shape = predicted.shape[2:]
    for b in range(predicted.shape[0]):
        p = (predicted[b : b + 1, c : c + 1] * inside[b : b + 1]).bool()
        t = (truth[b : b + 1, c : c + 1] * inside[b : b + 1]).bool()
        if not t.any():
            continue  # undefined without a reference structure
        spacing = spacings[b]
        if not p.any():
            voxels.append(math.sqrt(sum(n**2 for n in shape)))
            physical.append(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))
            continue
        voxels.append(_hausdorff95(p, t, None))
        physical.append(voxels[-1] if all(s == 1.0 for s in spacing) else _hausdorff95(p, t, spacing))
    if not voxels:
        return math.nan, math.nan
    return float(np.mean(voxels)), float(np.mean(physical))
