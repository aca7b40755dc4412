"""Where labelled cases are on disk, for each layout the field uses, checked before anything trains.

Each ``index_*`` function returns ``Case`` records (files only, nothing decoded) or raises
``DataError`` naming the files at fault (the first few and a count) and what would be accepted:

- ``folder2d``: ``images/`` and ``masks/`` with matching stems (PNG, JPG, TIF or GIF);
- ``drive``: DRIVE's ``{training,test}/{images,1st_manual,mask}``, the mask being the field of view;
- ``msd``: a Medical Segmentation Decathlon task, ``dataset.json`` + ``imagesTr``/``labelsTr`` NIfTI;
- ``nnunet``: an nnU-Net v2 raw dataset, ``dataset.json`` + ``imagesTr/{case}_{XXXX}{ending}`` per channel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers._errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Case:
    """One labelled sample: its image file(s) (one per channel for nnU-Net), label and optional FOV."""

    id: str
    images: tuple[Path, ...]
    label: Path
    fov: Path | None = None


def listing(paths: Iterable[Any], limit: int = 3) -> str:
    """``a, b, c and 7 more`` — how errors name many files."""
    items = [str(p) for p in paths]
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


def _check_link(path: Path) -> None:
    """A symbolic link that cannot be followed (a loop, or a missing target) is refused, not skipped:
    the search would otherwise run on the other files without a word."""
    if path.is_symlink() and not path.exists():
        raise DataError(
            f"data.path: {path} is a symbolic link that cannot be followed (a loop or a missing target); "
            "remove it or point it at a file"
        )


def _files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = path.name.lower()
        suffix = next((s for s in suffixes if name.endswith(s)), None)
        if suffix is not None and not path.name.startswith("."):
            _check_link(path)
            if path.is_file():
                out[path.name[: -len(suffix)]] = path
    return out


def _inside(root: Path, entry: Any, field: str) -> Path:
    """``root / entry`` for a path named in ``root``'s dataset.json, refused (before anything is opened)
    unless it stays inside ``root`` as written: relative, and no ``..`` leading out. Symbolic links
    inside the folder may point anywhere (a layout linked to files kept elsewhere)."""
    text = str(entry)
    parts = Path(text.replace("\\", "/")).parts
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 0 if part in (".", "") else 1
        if depth < 0:
            break
    if not text or Path(text).is_absolute() or depth < 0:
        raise DataError(
            f"data.path: {root / 'dataset.json'}: {field} {text!r} is outside the dataset folder; "
            "expected a path relative to the folder, e.g. ./imagesTr/case_001.nii.gz"
        )
    return root / text


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"data.path: {what} {path} is not a directory")
    return path


def index_folder2d(root: str | Path) -> list[Case]:
    """``root/images/*`` and ``root/masks/*`` paired by file stem."""
    root = Path(root)
    images_dir = _require_dir(root / "images", "the image folder")
    masks_dir = _require_dir(root / "masks", "the mask folder")
    images, masks = _files(images_dir, IMAGE_SUFFIXES), _files(masks_dir, IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"data.path: {images_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DataError(
            f"data.path: {len(missing)} images have no mask in {masks_dir}: "
            f"{listing(images[s].name for s in missing)} (masks must have the same file stem)"
        )
    extra = sorted(set(masks) - set(images))
    if extra:
        raise DataError(
            f"data.path: {len(extra)} masks have no image in {images_dir}: {listing(masks[s].name for s in extra)}"
        )
    return [Case(stem, (images[stem],), masks[stem]) for stem in sorted(images)]


_DRIVE_ID = re.compile(r"^(\d+)_")


def index_drive(root: str | Path) -> dict[str, list[Case]]:
    """DRIVE's ``training`` and ``test`` cases with their field-of-view masks, by split."""
    root = Path(root)
    out: dict[str, list[Case]] = {}
    for split in ("training", "test"):
        base = _require_dir(root / split, f"the DRIVE {split} folder")
        folders = {
            name: _files(_require_dir(base / name, f"the DRIVE {split}/{name} folder"), IMAGE_SUFFIXES)
            for name in ("images", "1st_manual", "mask")
        }
        by_id: dict[str, dict[str, Path]] = {}
        for name, files in folders.items():
            for path in files.values():
                match = _DRIVE_ID.match(path.name)
                if match is None:
                    raise DataError(f"data.path: {path} does not start with a DRIVE case number like 21_")
                by_id.setdefault(match.group(1), {})[name] = path
        incomplete = sorted(i for i, parts in by_id.items() if len(parts) != 3)
        if incomplete:
            raise DataError(
                f"data.path: DRIVE {split} cases lack an image, manual or mask file: {listing(incomplete)} "
                f"(expected {split}/images, {split}/1st_manual and {split}/mask for each)"
            )
        if not by_id:
            raise DataError(f"data.path: {base} holds no DRIVE cases")
        out[split] = [
            Case(i, (parts["images"],), parts["1st_manual"], parts["mask"]) for i, parts in sorted(by_id.items())
        ]
    return out


def read_json_object(path: Path, field: str, holding: str = "a JSON object") -> dict[str, Any]:
    """The JSON object in ``path``; otherwise a ``DataError`` naming ``field``, the file and what is wrong."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{field}: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{field}: {path} must hold {holding}")
    return data


def _dataset_json(root: Path) -> dict[str, Any]:
    path = root / "dataset.json"
    if not path.is_file():
        raise DataError(f"data.path: {path} not found (an MSD or nnU-Net dataset has a dataset.json)")
    return read_json_object(path, "data.path")


def labels_of(root: str | Path) -> dict[int, str]:
    """The ``labels`` of a dataset.json as {value: name} (MSD: {"0": name}; nnU-Net v2: {name: value})."""
    raw = _dataset_json(Path(root)).get("labels")
    if not isinstance(raw, Mapping) or not raw:
        raise DataError(f"data.path: {Path(root) / 'dataset.json'} has no 'labels' object")
    try:
        if all(str(k).isdigit() for k in raw):
            return {int(k): str(v) for k, v in raw.items()}
        return {int(v): str(k) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise DataError(f"data.path: {Path(root) / 'dataset.json'}: labels must map integers to names") from None


def index_msd(root: str | Path) -> list[Case]:
    """The ``training`` list of an MSD ``dataset.json`` (image and label NIfTI per case)."""
    root = Path(root)
    entries = _dataset_json(root).get("training")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"data.path: {root / 'dataset.json'} lists no 'training' cases")
    cases, missing = [], []
    for entry in entries:
        if not isinstance(entry, Mapping) or "image" not in entry or "label" not in entry:
            raise DataError(f"data.path: {root / 'dataset.json'}: training entries need 'image' and 'label'")
        image = _inside(root, entry["image"], "image").resolve()
        label = _inside(root, entry["label"], "label").resolve()
        missing += [p for p in (image, label) if not p.is_file()]
        name = image.name.split(".")[0]
        cases.append(Case(name, (image,), label))
    if missing:
        raise DataError(f"data.path: {len(missing)} files listed in dataset.json are missing: {listing(missing)}")
    return cases


def index_nnunet(root: str | Path) -> list[Case]:
    """An nnU-Net v2 raw dataset: ``imagesTr/{case}_{XXXX}{ending}`` per channel, ``labelsTr/{case}{ending}``."""
    root = Path(root)
    meta = _dataset_json(root)
    channels = meta.get("channel_names") or meta.get("modality")
    ending = meta.get("file_ending", ".nii.gz")
    if not isinstance(ending, str) or not re.fullmatch(r"\.[A-Za-z0-9][A-Za-z0-9.]*", ending):
        raise DataError(
            f"data.path: {root / 'dataset.json'}: file_ending {ending!r} is not valid; "
            "expected a file suffix such as .nii.gz or .png"
        )
    if not isinstance(channels, Mapping) or not channels:
        raise DataError(f"data.path: {root / 'dataset.json'} has no 'channel_names'")
    n_channels = len(channels)
    images_dir = _require_dir(root / "imagesTr", "the nnU-Net imagesTr folder")
    labels_dir = _require_dir(root / "labelsTr", "the nnU-Net labelsTr folder")
    labels = {p.name[: -len(ending)]: p for p in sorted(labels_dir.glob(f"*{ending}"))}
    for path in labels.values():
        _check_link(path)
    if not labels:
        raise DataError(f"data.path: {labels_dir} holds no *{ending} labels")
    # 2D images (PNG, TIF, ...): one file may hold several channels (an RGB PNG is channels 0-2), so
    # a case has files _0000 ... up to the channel count; volumes have one file per channel.
    image_files = not ending.lower().endswith(NIFTI_SUFFIXES)
    cases, problems = [], []
    for case, label in labels.items():
        images = tuple(images_dir / f"{case}_{c:04d}{ending}" for c in range(n_channels))
        if image_files and images[0].is_file():
            images = tuple(p for p in images if p.is_file())
        for path in images:
            _check_link(path)
        absent = [p.name for p in images if not p.is_file()]
        if absent:
            problems += absent
            continue
        cases.append(Case(case, images, label))
    if problems:
        raise DataError(
            f"data.path: {len(problems)} channel files are missing in {images_dir}: {listing(problems)} "
            f"(expected CASE_0000{ending} … CASE_{n_channels - 1:04d}{ending} for {n_channels} channels)"
        )
    return cases
