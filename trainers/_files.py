"""Real datasets from disk: a JSON-able config, deterministic splits, decoding and preprocessing.

Everything is decoded once into memory (the role MONAI's CacheDataset plays: loading is never the
bottleneck of an epoch), normalised per image or volume (zero mean, unit variance), optionally
CLAHE-equalised (2D, the joint-attention paper's preprocessing), resized (2D) or padded to a common
shape (3D; the padding lies outside the field of view, so no metric counts it). Random augmentation
and patch cropping happen per batch in the training loop.

Each case keeps its voxel size for ``hd95_mm``: a NIfTI header's ``pixdim`` (millimetres), or 1 per
axis for image files, which record none; resizing an image scales it by the old side over the new,
so that distances stay in units of the original file's pixels (padding leaves it unchanged).
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
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
    #: Keep each patient or sequence in one split: a regular expression over the case id (its first
    #: group, or the whole match, is the group), or a CSV file of ``case,group`` rows.
    group: str | None = None
    groups_file: str | None = None
    #: A separate test set: a folder of the same layout, or a text file of case ids (one per line)
    #: held out of the search's cases. Either replaces ``test_fraction``.
    test_path: str | None = None
    test_list: str | None = None

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
        if not isinstance(self.pad_multiple, int) or isinstance(self.pad_multiple, bool) or self.pad_multiple < 1:
            raise DataError(f"data.pad_multiple: {self.pad_multiple!r} is not valid; expected a positive integer")
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
        for name in ("group", "groups_file", "test_path", "test_list"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise DataError(f"data.{name}: {value!r} is not valid; expected a non-empty string or null")
        if self.group is not None and self.groups_file is not None:
            raise DataError("data.group/groups_file: give one way of grouping cases, not both")
        if self.group is not None:
            try:
                re.compile(self.group)
            except re.error as exc:
                raise DataError(f"data.group: {self.group!r} is not a valid regular expression ({exc})") from None
        if self.test_path is not None and self.test_list is not None:
            raise DataError("data.test_path/test_list: give one test set, a folder or a list of cases, not both")
        if (self.test_path or self.test_list) and self.test_fraction:
            raise DataError(
                f"data.test_fraction: {self.test_fraction} with a separate test set (test_path/test_list); set it to 0"
            )
        if (self.test_path or self.test_list) and self.kind == "drive":
            raise DataError("data.test_path/test_list: DRIVE keeps its own test set (its test/ folder)")

    def resolved(self, base: Path) -> FilesConfig:
        """The same config with its relative paths (``path``, ``groups_file``, ``test_path``,
        ``test_list``) taken relative to ``base``, the folder of the file that named them."""
        fields = {}
        for name in ("path", "groups_file", "test_path", "test_list"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_absolute():
                fields[name] = str((base / value).resolve())
        return FilesConfig.from_dict({**self.to_dict(), **fields}) if fields else self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilesConfig:
        refuse_unknown_fields(cls, data)
        if "kind" not in data or "path" not in data:
            raise DataError("data: a dataset on disk needs 'kind' and 'path'")
        return cls(**data)


# ---------------------------------------------------------------- splits


def split_cases(
    ids: Sequence[str], config: FilesConfig, groups: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Deterministic train/val/test case ids from ``config.seed`` (same ids, same split, any machine).

    ``groups`` maps each case to its group (a patient, a video sequence): whole groups are shuffled
    and dealt to the parts, so no group spans two of them. Without it every case is its own group,
    which is the plain case-level split.
    """
    members: dict[str, list[str]] = {}
    for case in sorted(ids):
        members.setdefault(case if groups is None else groups[case], []).append(case)
    order = sorted(members)
    random.Random(config.seed).shuffle(order)
    if config.limit is not None:  # whole groups, until the limit is reached
        kept, count = [], 0
        for group in order:
            if count >= config.limit:
                break
            kept.append(group)
            count += len(members[group])
        order = kept
    n = sum(len(members[g]) for g in order)

    def take(pool: list[str], wanted: int) -> tuple[list[str], list[str]]:
        taken, count = [], 0
        for group in pool:
            if count >= wanted:
                break
            taken.append(group)
            count += len(members[group])
        return taken, pool[len(taken) :]

    test, rest = take(order, round(n * config.test_fraction))
    n_rest = sum(len(members[g]) for g in rest)
    if config.folds:
        val = rest[config.fold :: config.folds]
        train = [g for i, g in enumerate(rest) if i % config.folds != config.fold]
    else:
        n_val = max(1, round(n_rest * config.val_fraction)) if config.val_fraction > 0 else 0
        val, train = take(rest, n_val)
    cases = {
        part: sorted(c for g in chosen for c in members[g])
        for part, chosen in (("train", train), ("val", val), ("test", test))
    }
    if not cases["train"] or not cases["val"]:
        grouped = f" in {len(order)} groups" if groups is not None else ""
        raise DataError(
            f"data: {n} cases{grouped} leave {len(cases['train'])} for training and {len(cases['val'])} for "
            "validation; add cases or change val_fraction/test_fraction/folds/limit"
            + (" or the grouping (group/groups_file)" if groups is not None else "")
        )
    return cases


def case_groups(ids: Sequence[str], config: FilesConfig) -> dict[str, str] | None:
    """Each case's group (patient, sequence) from ``config.group`` (a regular expression searched in
    the case id: its first capture group, or the whole match) or ``config.groups_file`` (a CSV with
    ``case`` and ``group`` columns); None when neither is set."""
    if config.group is not None:
        pattern = re.compile(config.group)
        found = {case: pattern.search(case) for case in ids}
        unmatched = sorted(case for case, m in found.items() if m is None)
        if unmatched:
            raise DataError(
                f"data.group: {config.group!r} matches no part of {len(unmatched)} case ids: {listing(unmatched)}; "
                "write a regular expression whose first group is the patient or sequence, e.g. '^(P\\d+)_'"
            )
        return {case: (m.group(1) if pattern.groups else m.group(0)) for case, m in found.items() if m is not None}
    if config.groups_file is not None:
        table = _read_groups_file(Path(config.groups_file))
        missing = sorted(case for case in ids if case not in table)
        if missing:
            raise DataError(
                f"data.groups_file: {config.groups_file} has no row for {len(missing)} cases: {listing(missing)} "
                "(one row per case: case,group)"
            )
        return {case: table[case] for case in ids}
    return None


def _read_groups_file(path: Path) -> dict[str, str]:
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data.groups_file: cannot read {path} ({exc})") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["case", "group"]:
        raise DataError(f"data.groups_file: {path} must be a CSV whose header is 'case,group'")
    table: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"data.groups_file: {path} line {number} is not 'case,group': {','.join(row)!r}")
        case, group = row[0].strip(), row[1].strip()
        if table.get(case, group) != group:
            raise DataError(f"data.groups_file: {path} puts case {case!r} in two groups ({table[case]!r}, {group!r})")
        table[case] = group
    return table


def read_case_list(path: Path) -> list[str]:
    """Case ids, one per line (blank lines and ``#`` comments ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data.test_list: cannot read {path} ({exc})") from None
    cases = [line.split("#", 1)[0].strip() for line in lines]
    return [c for c in cases if c]


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


#: Image modes that hold one grey value per pixel (any other is read through RGB).
_GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F", "LA")


def read_mask_2d(path: Path, classes: int, *, draft: int | None = None) -> np.ndarray:
    """(H, W) int64 class indices. Binary masks stored as 0/255 (or lossy JPEG) are thresholded at 127.

    A colour mask (a pixel's red, green and blue differ, e.g. red (255, 0, 0) on black) is binary
    only: a pixel is foreground when its brightest channel is above 127, so any colour drawn on black
    counts (a grey conversion would make pure red 76, background). With more classes a colour mask
    is refused: class indices are grey values 0..classes-1."""
    image = _open_image(path, draft=draft)
    if image.mode in _GREY_MODES:
        values = np.asarray(image.convert("L") if image.mode == "LA" else image, dtype=np.int64)
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
        values = rgb.max(axis=-1)
        if classes != 2 and bool((rgb.min(axis=-1) != values).any()):
            raise DataError(
                f"data: {path} is a colour mask (its red, green and blue differ) but data.classes is {classes}; "
                f"a mask of several classes holds each pixel's class index 0..{classes - 1} as a grey value"
            )
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


def read_spacing(path: Path, spatial_dims: int) -> tuple[float, ...]:
    """The voxel size of a NIfTI file along its first ``spatial_dims`` axes (its header's ``pixdim``,
    in the axis order ``read_volume`` returns); a zero or missing entry counts as 1."""
    import nibabel as nib

    try:
        image: Any = nib.load(str(path))  # the header only; the voxels stay on disk
        zooms = tuple(float(z) for z in image.header.get_zooms())
    except Exception as exc:  # nibabel raises many types for a bad file
        raise DataError(f"data: cannot read the header of {path} ({type(exc).__name__}: {exc})") from None
    zooms = (*zooms, *(1.0,) * spatial_dims)[:spatial_dims]
    return tuple(z if z > 0 else 1.0 for z in zooms)


def _file_size_2d(path: Path) -> tuple[int, int]:
    """(H, W) of an image file as stored, from its header (a draft decode is smaller)."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    return height, width


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
    spacing: tuple[float, ...]  # voxel size per spatial axis


def _load_case(case: Case, config: FilesConfig, classes: int, volumetric: bool, named: int = 0) -> _Loaded:
    """One case decoded and normalised; ``named``: the channels a 2D nnU-Net dataset.json names."""
    if volumetric:
        channels = [read_volume(p) for p in case.images]
        if len({c.shape[:3] for c in channels}) > 1:
            shapes = ", ".join(
                f"{p.name} {'×'.join(map(str, c.shape[:3]))}" for p, c in zip(case.images, channels, strict=True)
            )
            raise DataError(f"data: case {case.id} has channel volumes of different shapes: {shapes}; they must match")
        image = np.stack([c if c.ndim == 3 else c[..., 0] for c in channels])
        label = read_volume(case.label).round().astype(np.int64)
        fov = None
        spacing = read_spacing(case.images[0], image.ndim - 1)
    else:
        # When resizing anyway, JPEGs decode at a reduced scale (image and mask alike): several times faster.
        draft = 2 * config.size if config.size else None
        if config.kind == "nnunet":  # one file per channel group (an RGB PNG holds three), as nnU-Net reads them
            groups = [read_image_2d(path, "auto", draft=draft) for path in case.images]
            if len({g.shape[1:] for g in groups}) > 1:
                shapes = ", ".join(
                    f"{p.name} {g.shape[1]}×{g.shape[2]}" for p, g in zip(case.images, groups, strict=True)
                )
                raise DataError(f"data: case {case.id} has channel files of different sizes: {shapes}; they must match")
            image = np.concatenate(groups)
            if image.shape[0] != named:
                raise DataError(
                    f"data: {case.id} has {image.shape[0]} channels in {listing(p.name for p in case.images)}, "
                    f"but {Path(config.path) / 'dataset.json'} names {named} (channel_names)"
                )
        else:
            image = read_image_2d(case.images[0], config.channels, draft=draft)
        label = read_mask_2d(case.label, classes, draft=draft)
        fov = (np.asarray(_open_image(case.fov).convert("L")) > 127) if case.fov else None
        spacing = (1.0, 1.0)
        if draft is not None:  # a reduced decode: its pixels are larger than the file's
            stored = _file_size_2d(case.images[0])
            spacing = (stored[0] / image.shape[1], stored[1] / image.shape[2])
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
        spacing,
    )


def _resize(item: _Loaded, size: int) -> _Loaded:
    image = F.interpolate(item.image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    label = F.interpolate(item.label[None].float(), size=(size, size), mode="nearest")[0].long()
    fov = None if item.fov is None else F.interpolate(item.fov[None].float(), size=(size, size), mode="nearest")[0] > 0
    spacing = tuple(s * n / size for s, n in zip(item.spacing, item.image.shape[1:], strict=True))
    return _Loaded(image, label, fov, spacing)


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
        out.append(_Loaded(F.pad(it.image, pads), F.pad(it.label, pads), F.pad(fov, pads), it.spacing))
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


def _nnunet_channels(root: str) -> int:
    """How many channels a dataset.json names."""
    meta = read_json_object(Path(root) / "dataset.json", "data.path")
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


def _warn_constant_masks(items: Sequence[tuple[Case, _Loaded]], classes: int) -> None:
    """Warn when every mask holds one class only: nothing to segment, and a Dice of 0 or 1 that says
    nothing (e.g. masks of grey 128 read as all foreground). Some empty masks are normal (a slice or
    image without the structure), so the warning is for the data as a whole, not per file."""
    single = [(case, int(item.label.min())) for case, item in items if int(item.label.min()) == int(item.label.max())]
    if not single or len(single) < len(items):
        return
    values = sorted({value for _, value in single})
    what = (
        "background only"
        if values == [0]
        else "foreground only"
        if values == [1] and classes == 2
        else f"one class each (class {', '.join(map(str, values))})"
    )
    logger.warning(
        "data: all %d masks hold %s, e.g. %s; check that the masks mark the structure to segment "
        "(binary masks: 0 for background, above 127 for the structure; classes %d)",
        len(single),
        what,
        listing(case.label.name for case, _ in single),
        classes,
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


def _index_test_folder(config: FilesConfig, classes: int, names: list[str]) -> list[Case]:
    """The cases of ``config.test_path``, a folder of the same layout as ``config.path``."""
    assert config.test_path is not None
    if not Path(config.test_path).is_dir():
        raise DataError(f"data.test_path: {config.test_path} is not a directory")
    test_config = FilesConfig.from_dict({**config.to_dict(), "path": config.test_path, "test_path": None})
    cases, _, test_classes, test_names = _index(test_config)
    if test_classes != classes or (config.kind in ("msd", "nnunet") and test_names != names):
        raise DataError(
            f"data.test_path: {config.test_path} labels {test_names} but {config.path} labels {names}; "
            "the test set must have the same classes"
        )
    return cases


def _check_test_groups(
    config: FilesConfig, test_ids: list[str], split_groups: dict[str, list[str]] | None
) -> dict[str, list[str]] | None:
    """A separate test set shares no patient or sequence with the search's cases."""
    if split_groups is None:
        return None
    groups = case_groups(test_ids, config)
    assert groups is not None
    test_groups = sorted(set(groups.values()))
    shared = sorted(set(test_groups) & (set(split_groups["train"]) | set(split_groups["val"])))
    if shared:
        where = "test_list" if config.test_list is not None else "test_path"
        raise DataError(
            f"data.{where}: {len(shared)} groups have cases both in the test set and in the search's cases: "
            f"{listing(shared)}; a patient or sequence must stay in one split"
        )
    return {**split_groups, "test": test_groups}


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
    held_out: list[Case] = []
    if config.test_list is not None:
        listed = read_case_list(Path(config.test_list))
        unknown = sorted(set(listed) - set(by_id))
        if unknown:
            raise DataError(
                f"data.test_list: {len(unknown)} cases of {config.test_list} are not in {config.path}: "
                f"{listing(unknown)} (one case id per line, e.g. {next(iter(by_id))})"
            )
        held_out = [by_id.pop(i) for i in sorted(set(listed))]
    elif config.test_path is not None:
        held_out = _index_test_folder(config, classes, names)
    groups = case_groups(list(by_id), config)
    split = split_cases(list(by_id), config, groups)
    split_groups = None
    if groups is not None:
        split_groups = {part: sorted({groups[c] for c in split[part]}) for part in ("train", "val", "test")}
    if held_out:
        test_ids = [c.id for c in held_out]
        split_groups = _check_test_groups(config, test_ids, split_groups)
        by_id |= {f"test/{c.id}": c for c in held_out}
        split["test"] = [f"test/{i}" for i in test_ids]
    if own_test is not None:  # DRIVE's official test set
        test_cases = own_test[: config.limit] if config.limit else own_test
        by_id |= {f"test/{c.id}": c for c in test_cases}
        split["test"] = [f"test/{c.id}" for c in test_cases]
    wanted = [i for part in ("train", "val", "test") for i in split[part]]
    named = _nnunet_channels(config.path) if config.kind == "nnunet" and not volumetric else 0  # read once
    loaded = [(by_id[i], _load_case(by_id[i], config, classes, volumetric, named)) for i in wanted]
    _check_labels(loaded, classes)
    _warn_constant_masks(loaded, classes)
    items = {i: item for i, (_, item) in zip(wanted, loaded, strict=True)}
    if config.size is not None:
        items = {i: _resize(item, config.size) for i, item in items.items()}
    if not volumetric and config.size is None and config.patch is None:  # whole 2D images are batched
        _check_one_size(items, by_id)
    if volumetric or (config.size is None and config.patch is None):
        # One common shape, a multiple of pad_multiple; the padding lies outside the field of view.
        padded = _pad_all(list(items.values()), config.pad_multiple)
        items = dict(zip(items, padded, strict=True))
    if config.patch is not None:
        _check_patch(items, by_id, config.patch)
    channels = {int(it.image.shape[0]) for it in items.values()}
    if len(channels) != 1:
        raise DataError(f"data: images have different channel counts {sorted(channels)}; set data.channels")

    spacings: dict[str, list[tuple[float, ...]]] = {}  # each part's, filled by part()

    def part(name: str) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None]:
        chosen = [items[i] for i in split[name]]
        spacings[name] = [it.spacing for it in chosen]
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
        split_groups=split_groups,
        class_names=tuple(names),
        fingerprint=hashlib.sha256(repr(sorted(split.items())).encode()).hexdigest()[:16],
        val_spacing=spacings["val"],
        test_spacing=spacings["test"],
    )
