"""Training and validation of one candidate with MONAI's loss and metric."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from monai.data import DataLoader, Dataset, get_track_meta, set_track_meta
from monai.inferers import sliding_window_inference
from monai.transforms import Compose, RandFlipd, RandRotate90d, RandSpatialCropd
from monai.utils import set_determinism
from torch import nn

from trainers._data import Samples, SegmentationData
from trainers._errors import DataError
from trainers._losses import DEFAULT_L2_WEIGHT, LOSSES, create_loss
from trainers._metrics import (
    CLASS_METRICS,
    IMAGE_METRICS,
    METRIC_NAMES,
    SegmentationMetrics,
    foreground_dice,
    segmentation_metrics,
)
from trainers._tta import TTA_MODES, class_probabilities, flip_averaged

logger = logging.getLogger(__name__)

#: ``report(epoch, metrics)``: called once per epoch; the caller decides what reporting means.
Report = Callable[[int, Mapping[str, float]], None]


OPTIMIZERS = ("adamw", "adam", "sgd")
HEAD_PRIORS = ("auto", "on", "off")
#: ``head_prior="auto"`` starts at the class prior when some class covers less than this share of the
#: training labels (MSD hippocampus: 1.1%; DRIVE vessels 8.7%, Kvasir polyps ~15%, the built-in data
#: 12.5% in 2D and 3.2% in 3D).
RARE_CLASS = 0.02
SCHEDULES = ("cosine", "poly", "step")


@dataclass(frozen=True)
class TrainConfig:
    """How one candidate is trained. ``epochs`` is the fidelity every trial of a study shares.

    ``loss`` names one of ``LOSSES``; ``optimizer`` is ``adamw``, ``adam`` or ``sgd`` (momentum 0.9);
    ``schedule`` is ``cosine`` (to 0 over the run), ``poly`` (AF-Net: ``lr·(1 - it/max)^0.9``) or
    ``step`` (MPU-Net: halved every ``step_fraction`` of the run; see ``make_schedule``);
    ``grad_clip`` caps the gradient norm. ``l2_weight`` is λ of the ``bce_l2`` loss, which replaces
    the optimiser's weight decay (``weight_decay`` is then not applied).
    """

    epochs: int = 10
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    eval_batch_size: int = 16
    loss: str = "dice_ce"
    optimizer: str = "adamw"
    schedule: str = "cosine"
    #: ``step`` schedule: the learning rate halves after every such share of the run's iterations.
    #: MPU-Net halves every 100 of its 600 training passes: 1/6, so 5 halvings in any budget.
    step_fraction: float = 1 / 6
    l2_weight: float = DEFAULT_L2_WEIGHT
    #: Linear warm-up of the learning rate over this share of the iterations (0: none), then ``schedule``.
    warmup_fraction: float = 0.05
    grad_clip: float | None = None
    #: Stop after the epoch during which this many seconds of training have passed (None: run all epochs).
    time_budget_s: float | None = None
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``. On CUDA, ``amp`` trains in float16 with
    #: loss scaling and 2D networks use the channels-last memory layout.
    device: str = "auto"
    amp: bool = True
    #: Start the output layer's bias at the training labels' class prior (see ``init_head_prior``):
    #: ``auto`` does when a class is rarer than ``RARE_CLASS`` of the training voxels; ``on``; ``off``.
    head_prior: str = "auto"
    #: Test-time augmentation of validation and test predictions: ``none``, or ``flips`` (AF-Net: the
    #: mean class probabilities over every combination of flips of the spatial axes; see ``trainers._tta``).
    tta: str = "none"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataError(f"train.{name}: {value!r} is not valid; expected a positive integer")
        if not self.lr > 0:
            raise DataError(f"train.lr: {self.lr!r} is not valid; expected a positive number")
        if not self.weight_decay >= 0:
            raise DataError(f"train.weight_decay: {self.weight_decay!r} is not valid; expected a number ≥ 0")
        choices = (
            ("loss", tuple(LOSSES)),
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("head_prior", HEAD_PRIORS),
            ("tta", TTA_MODES),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise DataError(
                    f"train.{name}: {getattr(self, name)!r} is not valid; expected one of {', '.join(allowed)}"
                )
        if self.head_prior not in HEAD_PRIORS:
            raise DataError(
                f"train.head_prior: {self.head_prior!r} is not valid; expected one of {', '.join(HEAD_PRIORS)}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise DataError(f"train.device: {self.device!r} is not valid; expected auto, cpu or cuda")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise DataError(f"train.time_budget_s: {self.time_budget_s!r} is not valid; expected a number > 0 or None")
        if not isinstance(self.warmup_fraction, int | float) or not 0 <= self.warmup_fraction < 1:
            raise DataError(
                f"train.warmup_fraction: {self.warmup_fraction!r} is not valid; expected a fraction in [0, 1)"
            )
        if not isinstance(self.step_fraction, int | float) or not 0 < self.step_fraction <= 1:
            raise DataError(f"train.step_fraction: {self.step_fraction!r} is not valid; expected a fraction in (0, 1]")
        if not isinstance(self.l2_weight, int | float) or not self.l2_weight >= 0:
            raise DataError(f"train.l2_weight: {self.l2_weight!r} is not valid; expected a number ≥ 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise DataError(f"train.grad_clip: {self.grad_clip!r} is not valid; expected a number > 0 or None")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (MONAI's ``set_determinism``: cuDNN deterministic, no autotuning).

    Call it before the network is built: its initial weights are drawn from these generators, so a
    spec trained with one seed gets the same weights, and on CPU the same Dice, in any process."""
    set_determinism(seed=seed)
    torch.manual_seed(seed)


def determinism_note(device: torch.device) -> str:
    """What a rerun with the same spec, seed and data reproduces on ``device``, in words."""
    if device.type == "cuda":
        return (
            "cuda: seeded, cuDNN deterministic without autotuning; some CUDA kernels (atomic-add backward "
            "passes of max-pooling, interpolation and scatter) are not deterministic, so a rerun can differ "
            "in the last digits"
        )
    return "cpu: seeded; a rerun gives the same weights and Dice bit for bit (same thread count)"


#: A run *collapses* when its last validation Dice is below this share of its best epoch's.
COLLAPSE_RATIO = 0.8


def collapse_note(history: Sequence[Mapping[str, float]]) -> str | None:
    """Why a run's validation curve says it collapsed, or None: its last validation Dice is below
    ``COLLAPSE_RATIO`` × its best epoch's, or 0 at every epoch, while the training loss fell.

    Such a trial keeps its best epoch's weights and Dice, but where it lands on a front reflects the
    training recipe (or luck) more than its architecture, so the study flags it."""
    if len(history) < 2:
        return None
    dice = [float(h["val_dice"]) for h in history]
    loss = [float(h["loss"]) for h in history]
    best = max(dice)
    best_epoch = dice.index(best) + 1
    if loss[-1] >= loss[0]:
        return None  # not learning at all is a failure of another kind, and shows in the Dice
    if best <= 0:
        return f"val Dice 0 at every epoch while the loss fell from {loss[0]:.3f} to {loss[-1]:.3f}"
    if dice[-1] < COLLAPSE_RATIO * best:
        return (
            f"val Dice fell from {best:.3f} (epoch {best_epoch}) to {dice[-1]:.3f} (epoch {len(dice)}) "
            f"while the loss fell from {loss[best_epoch - 1]:.3f} to {loss[-1]:.3f}"
        )
    return None


def resolve_device(config: TrainConfig) -> torch.device:
    """The device a run trains on; asking for CUDA where there is none is an error, not a silent CPU run."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise DataError("train.device: 'cuda' was asked for but no CUDA device is available; use auto or cpu")
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser; with the ``bce_l2`` loss its weight decay is 0 (the loss carries the penalty)."""
    decay = 0.0 if config.loss == "bce_l2" else config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, iterations: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-iteration learning-rate schedule over ``iterations`` steps: ``warmup_fraction`` of them
    rising linearly from lr/100 to lr, the rest following ``schedule``.

    ``step`` halves the rate every ``round(step_fraction × rest)`` iterations (at least 1): MPU-Net
    halves every 100 of its training passes and ran 600, so at the default 1/6 a run of any length
    sees the same five halvings, ending at lr/32."""
    warmup = round(iterations * config.warmup_fraction) if config.warmup_fraction > 0 else 0
    rest = max(1, iterations - warmup)
    main: torch.optim.lr_scheduler.LRScheduler
    if config.schedule == "poly":
        main = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: max(0.0, 1 - it / rest) ** 0.9)
    elif config.schedule == "step":
        period = max(1, round(config.step_fraction * rest))
        main = torch.optim.lr_scheduler.StepLR(optimizer, step_size=period, gamma=0.5)
    else:
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=rest)
    if warmup == 0:
        return main
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


@dataclass
class TrainResult:
    """The outcome of training: the best validation Dice, when it happened, and those weights."""

    best_dice: float
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    #: Every metric of ``METRIC_NAMES`` on the validation set, with the best weights.
    metrics: SegmentationMetrics | None = None
    #: The same on the test set, when the data has one.
    test_metrics: SegmentationMetrics | None = None
    #: Where the time went, in seconds: ``setup`` (loader, class frequencies, head prior, loss,
    #: optimiser), ``steps`` (the training steps of every epoch), ``validation`` (every epoch's
    #: validation Dice), ``report`` (inside the per-epoch report callback), ``val_metrics`` and
    #: ``test_metrics`` (every metric of the best weights, after the loop). ``seconds`` is
    #: steps + validation + report.
    phases: dict[str, float] = field(default_factory=dict)


def _augment(data: SegmentationData) -> Compose:
    """Flips on every spatial axis and in-plane 90° rotations (when the plane is square)."""
    keys = ["image", "label"]
    steps: list[Any] = [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(data.spatial_dims)]
    shape = data.patch or tuple(data.train_images[0].shape[1:])
    if shape[0] == shape[1]:  # a rotation of a non-square plane would change the shape
        steps.append(RandRotate90d(keys=keys, prob=0.5, spatial_axes=(0, 1)))
    return Compose(steps)


class _PlainTensorDataset(Dataset):
    """MONAI's ``Dataset`` whose transforms run on plain tensors: tracking metadata (to invert
    transforms, which training never does) cost ~60% of an epoch's augmentation time here."""

    def _transform(self, index: int) -> Any:
        previous = get_track_meta()
        set_track_meta(False)
        try:
            return super()._transform(index)
        finally:
            set_track_meta(previous)


def _training_set(data: SegmentationData, seed: int) -> Dataset:
    """Whole images, or ``patches_per_image`` random patches of each image per epoch (each patch an item
    of its own, so that ``batch_size`` counts network inputs and batches mix images), augmented."""
    items = [{"image": img, "label": lbl} for img, lbl in zip(data.train_images, data.train_labels, strict=True)]
    steps: list[Any] = []
    if data.patch is not None:
        items = [item for item in items for _ in range(data.patches_per_image)]
        steps.append(RandSpatialCropd(keys=["image", "label"], roi_size=data.patch, random_size=False))
    transform = Compose([*steps, *_augment(data).transforms])
    transform.set_random_state(seed=seed)
    return _PlainTensorDataset(items, transform=transform)


def class_frequencies(data: SegmentationData) -> torch.Tensor:
    """The share of each class among the training labels (float64, sums to 1)."""
    counts = torch.zeros(data.num_classes, dtype=torch.float64)
    for label in data.train_labels:
        counts += torch.bincount(label.flatten(), minlength=data.num_classes)[: data.num_classes].double()
    return counts / counts.sum()


def init_head_prior(model: nn.Module, data: SegmentationData, frequencies: torch.Tensor | None = None) -> bool:
    """Set the bias of the model's output layer (``model.head``) to the class prior of the training
    labels: log class frequencies for a softmax head, the log-odds of the foreground for a sigmoid one.

    A fresh head predicts every class alike; with 1-2% foreground (a hippocampus in its volume) the
    bias then needs hundreds of Adam steps of size ``lr`` just to learn the prior, and short-budget
    trials end before they segment anything, or not at all for some initialisations. Starting at the
    prior (as RetinaNet does for its rare classes) removes that phase. Frequencies are floored at 1e-4.
    Returns False, changing nothing, when the model has no such layer.

    The other side: a head at the prior predicts background everywhere until the features overcome
    that margin, so with common classes and a tiny budget the arg-max Dice can stay 0 for longer than
    from a uniform start. ``TrainConfig.head_prior="auto"`` therefore applies it to rare classes only.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Conv1d | nn.Conv2d | nn.Conv3d) or head.bias is None:
        return False
    frequencies = (class_frequencies(data) if frequencies is None else frequencies).clamp_min(1e-4)
    if head.out_channels == 1 and data.num_classes == 2:
        bias = torch.log(frequencies[1:] / frequencies[0])
    elif head.out_channels == data.num_classes:
        bias = torch.log(frequencies)
    else:
        return False
    with torch.no_grad():
        head.bias.copy_(bias.to(head.bias))
    return True


def training_loader(data: SegmentationData, config: TrainConfig) -> DataLoader:
    """Shuffled, augmented training batches of ``data`` (the pipeline ``train`` consumes).

    The images are decoded once, into memory, when the data is loaded (the equivalent of MONAI's
    ``CacheDataset`` for the deterministic steps); only the random crops and augmentations run per
    epoch, in the main process (``bench/training.py`` measures this against pre-loaded tensors)."""
    return DataLoader(
        _training_set(data, config.seed),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(config.seed),
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    images: Samples,
    *,
    batch_size: int = 16,
    window: tuple[int, ...] | None = None,
    tta: str = "none",
) -> list[torch.Tensor]:
    """Class probabilities ``(C, *spatial)`` per image: batched forward passes, or a sliding window
    of shape ``window`` (overlap 0.25, Gaussian blending) for images larger than the network's input.

    ``tta="flips"``: the mean of the probabilities over every combination of flips of the spatial
    axes (``trainers._tta.flip_axes``; 4 passes in 2D, 8 in 3D), each flipped back."""
    if tta not in TTA_MODES:
        raise DataError(f"train.tta: {tta!r} is not valid; expected one of {', '.join(TTA_MODES)}")
    model.eval()
    device = next(model.parameters(), torch.zeros(())).device

    def forward(batch: torch.Tensor) -> torch.Tensor:
        if window is None:
            logits = model(batch)
        else:
            logits = sliding_window_inference(
                batch,
                roi_size=window,
                sw_batch_size=batch_size,
                predictor=model,
                overlap=0.25,
                mode="gaussian",
            )
        return class_probabilities(torch.as_tensor(logits).float())

    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device)
        return (flip_averaged(forward, batch) if tta == "flips" else forward(batch)).cpu()

    if window is not None:
        return [run(image[None])[0] for image in images]
    out: list[torch.Tensor] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        out.extend(run(chunk if isinstance(chunk, torch.Tensor) else torch.stack(list(chunk))))
    return out


def _measure(
    probabilities: Samples,
    labels: Samples,
    masks: Samples | None,
    *,
    spacing: Sequence[Sequence[float]] | None = None,
) -> SegmentationMetrics:
    shapes = {tuple(p.shape) for p in probabilities}
    if len(shapes) == 1:
        return segmentation_metrics(
            torch.stack(list(probabilities)),
            torch.stack(list(labels)),
            mask=None if masks is None else torch.stack(list(masks)),
            spacing=spacing,
        )
    # Images of different sizes: per image, then the mean of each metric over images.
    each = [
        segmentation_metrics(
            p[None],
            y[None],
            mask=None if masks is None else masks[i][None],
            spacing=None if spacing is None else spacing[i],
        )
        for i, (p, y) in enumerate(zip(probabilities, labels, strict=True))
    ]
    classes = list(each[0].per_class)
    per_class = {c: {n: _nanmean([e.per_class[c][n] for e in each]) for n in CLASS_METRICS} for c in classes}
    mean = {
        n: _nanmean([e.mean[n] for e in each]) if n in IMAGE_METRICS else _nanmean([per_class[c][n] for c in classes])
        for n in METRIC_NAMES
    }
    return SegmentationMetrics(per_class=per_class, mean=mean, images=len(each))


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def evaluate(
    model: nn.Module,
    images: Samples,
    labels: Samples,
    *,
    num_classes: int,
    batch_size: int = 16,
    masks: Samples | None = None,
    window: tuple[int, ...] | None = None,
    tta: str = "none",
) -> float:
    """Mean foreground Dice of ``model``'s arg-max prediction (per image, then averaged; inside ``masks``)."""
    probabilities = predict(model, images, batch_size=batch_size, window=window, tta=tta)
    # Dice alone: the other metrics (AUC's sort of every pixel above all) took most of a validation.
    if len({tuple(p.shape) for p in probabilities}) == 1:
        stacked = None if masks is None else torch.stack(list(masks))
        per_image = foreground_dice(torch.stack(list(probabilities)), torch.stack(list(labels)), mask=stacked)
    else:  # images of different sizes: one at a time
        per_image = torch.cat(
            [
                foreground_dice(p[None], y[None], mask=None if masks is None else masks[i][None])
                for i, (p, y) in enumerate(zip(probabilities, labels, strict=True))
            ]
        )
    # Over the images where a class is defined, then over the classes: as segmentation_metrics averages.
    value = float(torch.nanmean(torch.nanmean(per_image, dim=0)))
    return 0.0 if math.isnan(value) else value


def evaluate_metrics(
    model: nn.Module,
    images: Samples,
    labels: Samples,
    *,
    batch_size: int = 16,
    masks: Samples | None = None,
    window: tuple[int, ...] | None = None,
    tta: str = "none",
    spacing: Sequence[Sequence[float]] | None = None,
) -> SegmentationMetrics:
    """Every metric of ``METRIC_NAMES``, per class and mean, of ``model`` on ``images``; ``spacing``
    (one per image, e.g. ``SegmentationData.val_spacing``) is the voxel size ``hd95_mm`` is measured in."""
    probabilities = predict(model, images, batch_size=batch_size, window=window, tta=tta)
    return _measure(probabilities, labels, masks, spacing=spacing)


def train(model: nn.Module, data: SegmentationData, config: TrainConfig, report: Report | None = None) -> TrainResult:
    """Train ``model``; validate each epoch, keep the best weights and measure them on every metric.

    ``report(epoch, metrics)`` receives ``loss``, ``val_dice`` and ``best_dice`` after every epoch
    (epochs count from 1). A non-finite loss raises ``FloatingPointError``.
    """
    # Plain tensors through MONAI's transforms: its metadata tracking cost ~30% of a patch epoch here.
    set_track_meta(False)
    try:
        return _train(model, data, config, report)
    finally:
        set_track_meta(True)
        set_determinism(seed=None)


def _train(model: nn.Module, data: SegmentationData, config: TrainConfig, report: Report | None) -> TrainResult:
    # Again, whatever building the model drew: the batches and augmentations depend on the seed alone.
    set_up = time.perf_counter()
    seed_everything(config.seed)
    loader = training_loader(data, config)
    frequencies = class_frequencies(data)  # one pass over the training labels
    if config.head_prior == "on" or (config.head_prior == "auto" and frequencies.min() < RARE_CLASS):
        init_head_prior(model, data, frequencies)
    device = resolve_device(config)
    cuda = device.type == "cuda"
    model.to(device)
    if cuda and data.spatial_dims == 2:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented, not in the stubs
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and config.amp)
    loss_fn = create_loss(
        config.loss,
        channels=_out_channels(model, data),
        model=model,
        frequencies=frequencies,
        l2_weight=config.l2_weight,
    )
    optimizer = make_optimizer(model, config)
    schedule = make_schedule(optimizer, config, config.epochs * len(loader))

    best_dice, best_epoch = -1.0, 0
    best_state = _cpu_state(model)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    phases = {"setup": started - set_up, "steps": 0.0, "validation": 0.0, "report": 0.0}
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            images, labels = batch["image"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=cuda and config.amp):
                loss = loss_fn(model(images), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch}")
            scaler.scale(loss).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            total += float(loss.item()) * batch["image"].shape[0]
            count += batch["image"].shape[0]
        validating = time.perf_counter()
        phases["steps"] += validating - epoch_started
        val_dice = evaluate(
            model,
            data.val_images,
            data.val_labels,
            num_classes=data.num_classes,
            batch_size=config.eval_batch_size,
            masks=data.val_masks,
            window=data.patch,
            tta=config.tta,
        )
        if val_dice > best_dice:
            best_dice, best_epoch = val_dice, epoch
            best_state = _cpu_state(model)
        metrics = {"loss": total / max(count, 1), "val_dice": val_dice, "best_dice": best_dice}
        history.append({"epoch": float(epoch), **metrics})
        logger.debug("epoch %d: %s", epoch, metrics)
        reporting = time.perf_counter()
        phases["validation"] += reporting - validating
        if report is not None:
            report(epoch, metrics)
        phases["report"] += time.perf_counter() - reporting
        if config.time_budget_s is not None and time.perf_counter() - started >= config.time_budget_s:
            logger.info("time budget of %.0f s reached after epoch %d", config.time_budget_s, epoch)
            break
    seconds = time.perf_counter() - started
    final_state = _cpu_state(model)
    model.load_state_dict(best_state)
    measuring = time.perf_counter()
    measured = evaluate_metrics(
        model,
        data.val_images,
        data.val_labels,
        batch_size=config.eval_batch_size,
        masks=data.val_masks,
        window=data.patch,
        tta=config.tta,
        spacing=data.val_spacing,
    )
    testing = time.perf_counter()
    phases["val_metrics"] = testing - measuring
    tested = (
        evaluate_metrics(
            model,
            data.test_images,
            data.test_labels,
            batch_size=config.eval_batch_size,
            masks=data.test_masks,
            window=data.patch,
            tta=config.tta,
            spacing=data.test_spacing,
        )
        if len(data.test_images)
        else None
    )
    phases["test_metrics"] = time.perf_counter() - testing
    model.load_state_dict(final_state)
    return TrainResult(
        best_dice=best_dice,
        best_epoch=best_epoch,
        best_state=best_state,
        history=history,
        seconds=seconds,
        metrics=measured,
        test_metrics=tested,
        phases=phases,
    )


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the weights (what is kept, saved and compared)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _out_channels(model: nn.Module, data: SegmentationData) -> int:
    """The head's channel count, from one forward pass on a zero input of the training shape."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        device = next(model.parameters(), torch.zeros(())).device
        channels = int(model(torch.zeros(1, *data.input_shape, device=device)).shape[1])
        model.train(was_training)
    return channels
