"""Real datasets from disk: a JSON-able config, deterministic splits, decoding and preprocessing.

Everything is decoded once into memory (the role MONAI's CacheDataset plays: loading is never the
bottleneck of an epoch), normalised per image or volume (zero mean, unit variance), optionally
CLAHE-equalised (2D, the joint-attention paper's preprocessing), resized (2D) or padded to a common
shape (3D; the padding lies outside the field of view, so no metric counts it). Random augmentation
and patch cropping happen per batch in the training loop.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainers._data import SegmentationData, refuse_unknown_fields
from trainers._errors import DataError
from trainers._sources import (
    NIFTI_SUFFIXES,
    Case,
    index_drive,
    index_folder2d,
    index_msd,
    index_nnunet,
    labels_of,
    listing,
    read_json_object,
)

logger = logging.getLogger(__name__)

FILE_KINDS = ("folder2d", "drive", "msd", "nnunet")
#: The Medical Segmentation Decathlon tasks MONAI's ``DecathlonDataset`` can fetch.
MSD_TASKS = (
    "Task01_BrainTumour",
    "Task02_Heart",
    "Task03_Liver",
    "Task04_Hippocampus",
    "Task05_Prostate",
    "Task06_Lung",
    "Task07_Pancreas",
    "Task08_HepaticVessel",
    "Task09_Spleen",
    "Task10_Colon",
)
CHANNELS = ("auto", "rgb", "gray", "green")


@dataclass(frozen=True)
class FilesConfig:
    """A dataset on disk and how to split and preprocess it.

    ``classes`` counts the background (2 = binary) and is read from ``dataset.json`` for ``msd`` and
    ``nnunet``. ``size`` resizes 2D images to ``size × size``; ``patch`` trains on random patches of
    that side and validates whole images by sliding window. ``val_fraction`` and ``test_fraction``
    split the cases by ``seed`` (DRIVE keeps its own test set); ``folds`` > 1 makes fold ``fold`` the
    validation part instead. ``limit`` keeps the first cases only (after shuffling), for quick runs.
    ``download`` (``msd`` only) fetches the task named by the folder (e.g. ``.../Task04_Hippocampus``)
    through MONAI's ``DecathlonDataset`` when the folder holds no ``dataset.json`` yet (needs a network).
    """

    kind: str
    path: str
    classes: int = 2
    channels: str = "auto"
    size: int | None = None
    patch: int | None = None
    patches_per_image: int = 8
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    folds: int = 0
    fold: int = 0
    seed: int = 0
    limit: int | None = None
    clahe: bool = False
    pad_multiple: int = 16
    download: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FILE_KINDS:
            raise DataError(
                f"data.kind: {self.kind!r} is not valid; expected synthetic or one of {', '.join(FILE_KINDS)}"
            )
        if self.channels not in CHANNELS:
            raise DataError(f"data.channels: {self.channels!r} is not valid; expected one of {', '.join(CHANNELS)}")
        for name in ("size", "patch", "limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise DataError(f"data.{name}: {value!r} is not valid; expected a positive integer or null")
        for name in ("size", "patch"):
            value = getattr(self, name)
            if value is not None and value % 16:
                raise DataError(f"data.{name}: {value!r} is not valid; expected a multiple of 16")
        if not isinstance(self.classes, int) or self.classes < 2:
            raise DataError(f"data.classes: {self.classes!r} is not valid; expected at least 2 (background included)")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise DataError(f"data.{name}: {value!r} is not valid; expected a fraction in [0, 1)")
        if self.folds == 1 or self.folds < 0 or (self.folds and not 0 <= self.fold < self.folds):
            raise DataError(
                f"data.folds/fold: {self.folds}/{self.fold} is not valid; "
                "expected folds 0 (off) or ≥ 2 and 0 ≤ fold < folds"
            )
        if not isinstance(self.patches_per_image, int) or self.patches_per_image < 1:
            raise DataError(f"data.patches_per_image: {self.patches_per_image!r} is not valid; expected ≥ 1")
        if self.download and self.kind != "msd":
            raise DataError(f"data.download: only kind 'msd' can be downloaded, not {self.kind!r}")
        if self.download and Path(self.path).name not in MSD_TASKS:
            raise DataError(
                f"data.download: the folder name {Path(self.path).name!r} must be the MSD task to fetch, "
                f"one of {', '.join(MSD_TASKS)}"
            )
        if self.clahe and self.kind in ("msd", "nnunet"):
            raise DataError("data.clahe: CLAHE applies to 2D images (folder2d, drive); set it to false for volumes")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilesConfig:
        refuse_unknown_fields(cls, data)
        if "kind" not in data or "path" not in data:
            raise DataError("data: a dataset on disk needs 'kind' and 'path'")
        return cls(**data)


# ---------------------------------------------------------------- splits


def split_cases(ids: Sequence[str], config: FilesConfig) -> dict[str, list[str]]:
    """Deterministic train/val/test case ids from ``config.seed`` (same ids, same split, any machine)."""
    order = sorted(ids)
    random.Random(config.seed).shuffle(order)
    if config.limit is not None:
        order = order[: config.limit]
    n = len(order)
    n_test = round(n * config.test_fraction)
    test, rest = order[:n_test], order[n_test:]
    if config.folds:
        chunks = [rest[i :: config.folds] for i in range(config.folds)]
        val = chunks[config.fold]
        train = [c for i, chunk in enumerate(chunks) if i != config.fold for c in chunk]
    else:
        n_val = max(1, round(len(rest) * config.val_fraction)) if config.val_fraction > 0 else 0
        val, train = rest[:n_val], rest[n_val:]
    if not train or not val:
        raise DataError(
            f"data: {n} cases leave {len(train)} for training and {len(val)} for validation; "
            "add cases or change val_fraction/test_fraction/folds/limit"
        )
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


# ---------------------------------------------------------------- decoding


def _open_image(path: Path, *, draft: int | None = None) -> Any:
    """Decode an image file; ``draft`` lets JPEG decode at a reduced scale no smaller than that side."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        if draft is not None and image.format == "JPEG":
            image.draft(image.mode, (draft, draft))
        image.load()
        return image
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"data: cannot read {path} ({exc})") from None


def read_image_2d(path: Path, channels: str, *, draft: int | None = None) -> np.ndarray:
    """(C, H, W) float32: ``rgb``, ``gray``, ``green`` (a fundus image's most contrasted channel) or
    ``auto`` (gray for single-channel files, RGB otherwise)."""
    image = _open_image(path, draft=draft)
    mode = channels if channels != "auto" else ("gray" if image.mode in ("L", "I", "I;16", "F", "1") else "rgb")
    if mode == "gray":
        return np.asarray(image.convert("F"), dtype=np.float32)[None]
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    return rgb[1:2] if mode == "green" else rgb


def read_mask_2d(path: Path, classes: int, *, draft: int | None = None) -> np.ndarray:
    """(H, W) int64 class indices. Binary masks stored as 0/255 (or lossy JPEG) are thresholded at 127."""
    values = np.asarray(_open_image(path, draft=draft).convert("L"), dtype=np.int64)
    if classes == 2 and values.max() > 1:
        return (values > 127).astype(np.int64)
    return values


def read_volume(path: Path) -> np.ndarray:
    import nibabel as nib

    try:
        image: Any = nib.load(str(path))
        return np.asarray(image.get_fdata(dtype=np.float32), dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for a bad file
        raise DataError(f"data: cannot read {path} ({type(exc).__name__}: {exc})") from None


def clahe(image: np.ndarray, *, clip: float = 0.01, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of each channel (scikit-image), values in [0, 1]."""
    from skimage import exposure

    out = np.empty_like(image)
    for c in range(image.shape[0]):
        channel = image[c]
        span = float(channel.max() - channel.min()) or 1.0
        scaled = (channel - channel.min()) / span
        kernel = max(8, min(channel.shape) // tiles)
        out[c] = exposure.equalize_adapthist(scaled, kernel_size=kernel, clip_limit=clip)
    return out


def normalise(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole image or volume (intensity scales differ per file)."""
    std = float(image.std())
    return ((image - float(image.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


@dataclass
class _Loaded:
    image: torch.Tensor  # (C, *spatial)
    label: torch.Tensor  # (1, *spatial) int64
    fov: torch.Tensor | None  # (1, *spatial) bool


def _load_case(case: Case, config: FilesConfig, classes: int, volumetric: bool) -> _Loaded:
    if volumetric:
        channels = [read_volume(p) for p in case.images]
        image = np.stack([c if c.ndim == 3 else c[..., 0] for c in channels])
        label = read_volume(case.label).round().astype(np.int64)
        fov = None
    else:
        # When resizing anyway, JPEGs decode at a reduced scale (image and mask alike): several times faster.
        draft = 2 * config.size if config.size else None
        if config.kind == "nnunet":  # one file per channel group (an RGB PNG holds three), as nnU-Net reads them
            image = np.concatenate([read_image_2d(path, "auto", draft=draft) for path in case.images])
            if image.shape[0] != _nnunet_channels(config):
                raise DataError(
                    f"data: {case.id} has {image.shape[0]} channels in {listing(p.name for p in case.images)}, "
                    f"but {Path(config.path) / 'dataset.json'} names {_nnunet_channels(config)} (channel_names)"
                )
        else:
            image = read_image_2d(case.images[0], config.channels, draft=draft)
        label = read_mask_2d(case.label, classes, draft=draft)
        fov = (np.asarray(_open_image(case.fov).convert("L")) > 127) if case.fov else None
    if image.shape[1:] != label.shape or (fov is not None and fov.shape != label.shape):
        raise DataError(
            f"data: {case.images[0].name} is {tuple(image.shape[1:])} but its mask {case.label.name} is "
            f"{tuple(label.shape)}" + (f" and its field of view {tuple(fov.shape)}" if fov is not None else "")
        )
    if config.clahe:
        image = clahe(image)
    image = normalise(image)
    return _Loaded(
        torch.from_numpy(np.ascontiguousarray(image)),
        torch.from_numpy(np.ascontiguousarray(label))[None],
        None if fov is None else torch.from_numpy(np.ascontiguousarray(fov))[None],
    )


def _resize(item: _Loaded, size: int) -> _Loaded:
    image = F.interpolate(item.image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    label = F.interpolate(item.label[None].float(), size=(size, size), mode="nearest")[0].long()
    fov = None if item.fov is None else F.interpolate(item.fov[None].float(), size=(size, size), mode="nearest")[0] > 0
    return _Loaded(image, label, fov)


def _pad_all(items: list[_Loaded], multiple: int) -> list[_Loaded]:
    """Pad every volume to one common shape, a multiple of ``multiple``; the padding is outside the FOV."""
    target = [max(it.image.shape[1 + d] for it in items) for d in range(items[0].image.ndim - 1)]
    target = [-(-t // multiple) * multiple for t in target]
    out = []
    for it in items:
        pads: list[int] = []
        for d in reversed(range(len(target))):
            pads += [0, target[d] - it.image.shape[1 + d]]
        fov = torch.ones_like(it.label, dtype=torch.bool) if it.fov is None else it.fov
        out.append(_Loaded(F.pad(it.image, pads), F.pad(it.label, pads), F.pad(fov, pads)))
    return out


def _shape(item: _Loaded) -> str:
    return "×".join(str(int(n)) for n in item.image.shape[1:])


def _check_one_size(items: Mapping[str, _Loaded], by_id: Mapping[str, Case]) -> None:
    """Whole 2D images are batched, so they must share one size (or be resized, or cropped to patches)."""
    sizes: dict[str, list[str]] = {}
    for i, item in items.items():
        sizes.setdefault(_shape(item), []).append(by_id[i].images[0].name)
    if len(sizes) > 1:
        ranked = sorted(sizes.items(), key=lambda kv: -len(kv[1]))
        shown = listing(f"{shape} ({len(names)} images, e.g. {names[0]})" for shape, names in ranked)
        raise DataError(
            f"data.size: the images have {len(sizes)} different sizes: {shown}; set data.size to resize them "
            "to one square size, or data.patch to train on patches and validate by sliding window"
        )


def _check_patch(items: Mapping[str, _Loaded], by_id: Mapping[str, Case], patch: int) -> None:
    """A random patch of side ``patch`` must fit inside every image or volume."""
    small = [f"{by_id[i].images[0].name} ({_shape(it)})" for i, it in items.items() if min(it.image.shape[1:]) < patch]
    if small:
        raise DataError(
            f"data.patch: {patch} is larger than {len(small)} images or volumes: {listing(small)}; "
            "choose a patch no larger than the smallest side"
        )


def _nnunet_channels(config: FilesConfig) -> int:
    meta = read_json_object(Path(config.path) / "dataset.json", "data.path")
    return len(meta.get("channel_names") or meta.get("modality") or {})


def _nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _check_labels(items: Sequence[tuple[Case, _Loaded]], classes: int) -> None:
    bad = [
        (case.label.name, sorted(set(item.label.unique().tolist())))
        for case, item in items
        if int(item.label.min()) < 0 or int(item.label.max()) >= classes
    ]
    if bad:
        raise DataError(
            f"data: {len(bad)} masks hold label values outside 0..{classes - 1} (classes {classes}): "
            f"{listing(f'{name} {values}' for name, values in bad)}"
        )


def _index(config: FilesConfig) -> tuple[list[Case], list[Case] | None, int, list[str]]:
    """All cases (and DRIVE's own test cases), the number of classes and their names."""
    if config.kind == "folder2d":
        return index_folder2d(config.path), None, config.classes, [str(i) for i in range(config.classes)]
    if config.kind == "drive":
        splits = index_drive(config.path)
        return splits["training"], splits["test"], 2, ["background", "vessel"]
    labels = labels_of(config.path)
    names = [labels[k] for k in sorted(labels)]
    cases = index_msd(config.path) if config.kind == "msd" else index_nnunet(config.path)
    return cases, None, len(labels), names


def fetch_msd(path: Path) -> None:
    """Download and unpack the MSD task ``path.name`` into ``path`` with MONAI's ``DecathlonDataset``."""
    from monai.apps import DecathlonDataset

    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s into %s", path.name, path.parent)
    try:  # cache_rate 0: fetch and unpack only; decoding is ours
        DecathlonDataset(root_dir=path.parent, task=path.name, section="training", download=True, cache_rate=0.0)
    except Exception as exc:  # network errors, checksum mismatches, a full disk
        failure = f"{type(exc).__name__}: {exc}"
        raise DataError(f"data.download: fetching {path.name} into {path.parent} failed ({failure})") from exc
    if not (path / "dataset.json").is_file():
        raise DataError(f"data.download: {path.name} was fetched but {path / 'dataset.json'} is missing")


def load_files(config: FilesConfig) -> SegmentationData:
    """Index, split, decode and preprocess a dataset on disk; every check runs before anything trains."""
    if config.download and not (Path(config.path) / "dataset.json").is_file():
        fetch_msd(Path(config.path))
    if not Path(config.path).is_dir():
        raise DataError(f"data.path: {config.path} is not a directory")
    cases, own_test, classes, names = _index(config)
    volumetric = config.kind == "msd" or (config.kind == "nnunet" and _nifti(cases[0].label))
    if volumetric and config.size is not None:
        raise DataError("data.size: resizing applies to 2D images; volumes are padded to a common shape")
    by_id = {c.id: c for c in cases}
    split = split_cases(list(by_id), config)
    if own_test is not None:  # DRIVE's official test set
        test_cases = own_test[: config.limit] if config.limit else own_test
        split["test"] = [c.id for c in test_cases]
        by_id |= {f"test/{c.id}": c for c in test_cases}
        split["test"] = [f"test/{c.id}" for c in test_cases]
    wanted = [i for part in ("train", "val", "test") for i in split[part]]
    loaded = [(by_id[i], _load_case(by_id[i], config, classes, volumetric)) for i in wanted]
    _check_labels(loaded, classes)
    items = {i: item for i, (_, item) in zip(wanted, loaded, strict=True)}
    if config.size is not None:
        items = {i: _resize(item, config.size) for i, item in items.items()}
    if config.patch is not None:
        _check_patch(items, by_id, config.patch)
    elif not volumetric and config.size is None:  # whole 2D images are batched: one size
        _check_one_size(items, by_id)
    if volumetric or (config.size is None and config.patch is None):
        # One common shape, a multiple of pad_multiple; the padding lies outside the field of view.
        padded = _pad_all(list(items.values()), config.pad_multiple)
        items = dict(zip(items, padded, strict=True))
    channels = {int(it.image.shape[0]) for it in items.values()}
    if len(channels) != 1:
        raise DataError(f"data: images have different channel counts {sorted(channels)}; set data.channels")

    def part(name: str) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None]:
        chosen = [items[i] for i in split[name]]
        fovs = [it.fov for it in chosen]
        masks = (
            None
            if all(f is None for f in fovs)
            else [
                f if f is not None else torch.ones_like(it.label, dtype=torch.bool)
                for f, it in zip(fovs, chosen, strict=True)
            ]
        )
        return [it.image for it in chosen], [it.label for it in chosen], masks

    train_i, train_l, train_m = part("train")
    val_i, val_l, val_m = part("val")
    test_i, test_l, test_m = part("test")
    patch = None if config.patch is None else (config.patch,) * (train_i[0].ndim - 1)
    return SegmentationData(
        train_images=train_i,
        train_labels=train_l,
        val_images=val_i,
        val_labels=val_l,
        num_classes=classes,
        val_masks=val_m,
        test_images=test_i,
        test_labels=test_l,
        test_masks=test_m,
        train_masks=train_m,
        patch=patch,
        patches_per_image=config.patches_per_image,
        split=split,
        class_names=tuple(names),
        fingerprint=hashlib.sha256(repr(sorted(split.items())).encode()).hexdigest()[:16],
    )
