"""Training and validation of one candidate with MONAI's loss and metric."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from monai.data import DataLoader, Dataset
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.transforms import Compose, RandFlipd, RandRotate90d
from monai.utils import set_determinism
from torch import nn

from trainers._data import SegmentationData
from trainers._errors import DataError

logger = logging.getLogger(__name__)

#: ``report(epoch, metrics)``: called once per epoch; the caller decides what reporting means.
Report = Callable[[int, Mapping[str, float]], None]


@dataclass(frozen=True)
class TrainConfig:
    """How one candidate is trained. ``epochs`` is the fidelity every trial of a study shares."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataError(f"train.{name}: {value!r} is not valid; expected a positive integer")
        if not self.lr > 0:
            raise DataError(f"train.lr: {self.lr!r} is not valid; expected a positive number")


@dataclass
class TrainResult:
    """The outcome of training: the best validation Dice, when it happened, and those weights."""

    best_dice: float
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _train_transform() -> Compose:
    keys = ["image", "label"]
    return Compose(
        [
            RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            RandRotate90d(keys=keys, prob=0.5, spatial_axes=(0, 1)),
        ]
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, num_classes: int, batch_size: int = 16
) -> float:
    """Mean foreground Dice of ``model``'s argmax prediction (per image, then averaged)."""
    model.eval()
    metric = DiceMetric(include_background=False, reduction="mean", num_classes=num_classes)
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        y = labels[start : start + batch_size]
        prediction = model(x).argmax(dim=1, keepdim=True)
        metric(y_pred=prediction, y=y)
    aggregated = metric.aggregate()
    value = float(aggregated.item() if isinstance(aggregated, torch.Tensor) else aggregated[0].item())
    return 0.0 if math.isnan(value) else value


def train(model: nn.Module, data: SegmentationData, config: TrainConfig, report: Report | None = None) -> TrainResult:
    """Train ``model`` with Dice-CE and AdamW; validate each epoch and keep the best weights.

    ``report(epoch, metrics)`` receives ``loss``, ``val_dice`` and ``best_dice`` after every epoch
    (epochs count from 1). A non-finite loss raises ``FloatingPointError``.
    """
    set_determinism(seed=config.seed)
    torch.manual_seed(config.seed)
    items = [{"image": img, "label": lbl} for img, lbl in zip(data.train_images, data.train_labels, strict=True)]
    transform = _train_transform()
    transform.set_random_state(seed=config.seed)
    loader = DataLoader(
        Dataset(items, transform=transform),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(config.seed),
    )
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(loader))

    best_dice, best_epoch = -1.0, 0
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch["image"]), batch["label"])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch}")
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.item()) * batch["image"].shape[0]
            count += batch["image"].shape[0]
        val_dice = evaluate(
            model,
            data.val_images,
            data.val_labels,
            num_classes=data.num_classes,
            batch_size=config.eval_batch_size,
        )
        if val_dice > best_dice:
            best_dice, best_epoch = val_dice, epoch
            best_state = copy.deepcopy(model.state_dict())
        metrics = {"loss": total / max(count, 1), "val_dice": val_dice, "best_dice": best_dice}
        history.append({"epoch": float(epoch), **metrics})
        logger.debug("epoch %d: %s", epoch, metrics)
        if report is not None:
            report(epoch, metrics)
    set_determinism(seed=None)
    return TrainResult(
        best_dice=best_dice,
        best_epoch=best_epoch,
        best_state=best_state,
        history=history,
        seconds=time.perf_counter() - started,
    )
