"""Segmentation metrics of the papers, per class and mean, with an optional field-of-view mask.

Confusion-matrix metrics (Dice, IoU, precision, recall, specificity, accuracy, MCC) are computed per
image with MONAI's confusion-matrix functions and averaged over the images where they are defined;
AUC pools every pixel of every image (as the DRIVE literature reports it), through MONAI's
``compute_roc_auc``; HD95 is MONAI's 95th-percentile Hausdorff distance per image, in voxels (or in
``spacing`` units). Where the reference of a class is present but the prediction is empty, HD95 is
the image diagonal rather than undefined, so that missing a structure is not rewarded.

Only the foreground classes count (class 0 is the background); with a field-of-view mask, pixels
outside it are ignored by every metric.
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
    compute_roc_auc,
    get_confusion_matrix,
)

#: Metric names in the order they are reported; ``dice`` is the search objective.
METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "mcc", "auc", "hd95")
_MONAI_NAMES = {
    "dice": "f1 score",
    "iou": "threat score",
    "precision": "precision",
    "recall": "sensitivity",
    "specificity": "specificity",
    "accuracy": "accuracy",
    "mcc": "matthews correlation coefficient",
}


@dataclass(frozen=True)
class SegmentationMetrics:
    """Per foreground class (``"1"``, ``"2"``, …) and their mean, for every name of ``METRIC_NAMES``."""

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


def segmentation_metrics(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    spacing: Sequence[float] | None = None,
    hd95: bool = True,
) -> SegmentationMetrics:
    """Metrics of predicted class probabilities against integer labels.

    ``probabilities``: (B, C, *spatial) with C ≥ 2 (softmax over classes; a binary sigmoid output is
    passed as ``[1 - p, p]``). ``labels``: (B, 1, *spatial) class indices. ``mask``: (B, 1, *spatial),
    true inside the field of view. The prediction is the arg-max class.
    """
    if probabilities.ndim < 4 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be (B, C>=2, *spatial); got {tuple(probabilities.shape)}")
    num_classes = probabilities.shape[1]
    if labels.shape != (probabilities.shape[0], 1, *probabilities.shape[2:]):
        raise ValueError(
            f"labels must be {(probabilities.shape[0], 1, *probabilities.shape[2:])}; got {tuple(labels.shape)}"
        )
    probabilities = probabilities.detach().float().cpu()
    truth = _one_hot(labels.cpu(), num_classes)
    predicted = _one_hot(probabilities.argmax(dim=1, keepdim=True), num_classes)
    inside = torch.ones_like(labels, dtype=torch.bool) if mask is None else mask.cpu().bool()
    if inside.shape != labels.shape:
        raise ValueError(f"mask must be {tuple(labels.shape)}; got {tuple(inside.shape)}")
    weight = inside.float()
    # Pixels outside the field of view become (prediction 0, truth 0): true negatives, taken back below.
    confusion = get_confusion_matrix(predicted * weight, truth * weight, include_background=False)  # (B, C-1, 4)
    outside = (~inside).flatten(1).sum(dim=1).float()  # (B,)
    confusion[..., 2] -= outside[:, None]
    per_class: dict[str, dict[str, float]] = {}
    images = probabilities.shape[0]
    diagonal = math.sqrt(sum((n * (spacing[i] if spacing else 1.0)) ** 2 for i, n in enumerate(labels.shape[2:])))
    for c in range(1, num_classes):
        values: dict[str, float] = {}
        for name, monai_name in _MONAI_NAMES.items():
            per_image = compute_confusion_matrix_metric(monai_name, confusion[:, c - 1, :])
            values[name] = _nanmean([float(v) for v in per_image.flatten()])
        scores = probabilities[:, c][inside[:, 0]]
        targets = truth[:, c][inside[:, 0]]
        if 0 < int(targets.sum()) < targets.numel():
            values["auc"] = float(cast(float, compute_roc_auc(scores.flatten(), targets.flatten())))
        else:
            values["auc"] = math.nan  # undefined with one class only
        values["hd95"] = _hd95(predicted, truth, inside, c, spacing, diagonal) if hd95 else math.nan
        per_class[str(c)] = values
    mean = {name: _nanmean([per_class[c][name] for c in per_class]) for name in METRIC_NAMES}
    return SegmentationMetrics(per_class=per_class, mean=mean, images=images)


def _hd95(
    predicted: torch.Tensor,
    truth: torch.Tensor,
    inside: torch.Tensor,
    c: int,
    spacing: Sequence[float] | None,
    diagonal: float,
) -> float:
    distances = []
    for b in range(predicted.shape[0]):
        p = (predicted[b : b + 1, c : c + 1] * inside[b : b + 1]).bool()
        t = (truth[b : b + 1, c : c + 1] * inside[b : b + 1]).bool()
        if not t.any():
            continue  # undefined without a reference structure
        if not p.any():
            distances.append(diagonal)
            continue
        pair_p = torch.cat([~p, p], dim=1).float()
        pair_t = torch.cat([~t, t], dim=1).float()
        with warnings.catch_warnings():  # MONAI 1.6 warns about its own internal call to get_mask_edges
            warnings.simplefilter("ignore", FutureWarning)
            value = compute_hausdorff_distance(
                pair_p, pair_t, include_background=False, percentile=95, spacing=list(spacing) if spacing else None
            )
        distances.append(float(value.flatten()[0]))
    return float(np.mean(distances)) if distances else math.nan
