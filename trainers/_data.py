"""In-memory segmentation data and the JSON-able configs that produce it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from trainers._errors import DataError

#: A split's images (or labels, or masks): a stacked tensor (N, C, *spatial) or a list of (C, *spatial).
Samples = Sequence[torch.Tensor] | torch.Tensor


@dataclass(frozen=True)
class SegmentationData:
    """Labelled images in memory, split train/val (and optionally test).

    Each split is a sequence of images ``(C, *spatial)`` float32 and labels ``(1, *spatial)`` int64: a
    stacked tensor ``(N, C, *spatial)`` when all share one shape, or a list. ``*_masks`` are fields of
    view (``(1, *spatial)`` bool; metrics ignore what lies outside). With ``patch`` set, training uses
    ``patches_per_image`` random patches of that shape per image and epoch, and validation slides a
    window of that shape over whole images. ``split`` names the case ids of each part, ``split_groups``
    their groups when cases are grouped. ``val_spacing`` and ``test_spacing`` hold each image's voxel
    size per spatial axis (millimetres from a NIfTI header; 1 per axis where the files record none;
    None: 1 everywhere), which ``hd95_mm`` is measured in.
    """

    train_images: Samples
    train_labels: Samples
    val_images: Samples
    val_labels: Samples
    num_classes: int
    val_masks: Samples | None = None
    test_images: Samples = ()
    test_labels: Samples = ()
    test_masks: Samples | None = None
    train_masks: Samples | None = None
    patch: tuple[int, ...] | None = None
    patches_per_image: int = 8
    split: Mapping[str, Sequence[str]] | None = None
    #: With grouped cases: the groups (patients, sequences) of each part; none is in two parts.
    split_groups: Mapping[str, Sequence[str]] | None = None
    class_names: tuple[str, ...] = ()
    fingerprint: str = ""
    val_spacing: Sequence[tuple[float, ...]] | None = None
    test_spacing: Sequence[tuple[float, ...]] | None = None

    @property
    def spatial_dims(self) -> int:
        return int(self.train_images[0].ndim - 1)

    @property
    def in_channels(self) -> int:
        return int(self.train_images[0].shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one network input, ``(C, *spatial)`` (the patch when patches are used): the size
        at which costs are counted."""
        if self.patch is not None:
            return (self.in_channels, *self.patch)
        return tuple(int(s) for s in self.train_images[0].shape)


def refuse_unknown_fields(cls: Any, data: Mapping[str, Any]) -> None:
    """A data config's fields come from JSON a user wrote: name the first unknown one and the known ones."""
    known = tuple(f.name for f in fields(cls))
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DataError(f"data.{unknown[0]}: unknown field; expected fields: {', '.join(known)}")


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in synthetic task: lesion-like blobs and vessel-like curves (see ``synthetic``), as
    ``size``² images or, with ``spatial_dims=3``, ``size``³ volumes."""

    n_train: int = 96
    n_val: int = 32
    size: int | None = None  # None: 64 for 2D images, 32 for 3D volumes
    seed: int = 0
    kind: str = "synthetic"
    n_test: int = 0
    spatial_dims: int = 2

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise DataError(f"data.spatial_dims: {self.spatial_dims!r} is not valid; expected 2 or 3")
        if self.size is None:
            object.__setattr__(self, "size", 64 if self.spatial_dims == 2 else 32)
        if not isinstance(self.n_test, int) or self.n_test < 0:
            raise DataError(f"data.n_test: {self.n_test!r} is not valid; expected an integer ≥ 0")
        for name in ("n_train", "n_val"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataError(f"data.{name}: {value!r} is not valid; expected a positive integer")
        if not isinstance(self.size, int) or self.size < 16 or self.size % 16:
            raise DataError(f"data.size: {self.size!r} is not valid; expected a multiple of 16, at least 16")
        if self.kind != "synthetic":
            raise DataError(f"data.kind: {self.kind!r} is not valid; expected 'synthetic'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticConfig:
        refuse_unknown_fields(cls, data)
        return cls(**data)


def data_config_from_dict(data: Mapping[str, Any]) -> Any:
    """Rebuild a data config recorded in a study (or written by a user); ``kind`` selects the source."""
    from trainers._files import FILE_KINDS, FilesConfig

    kind = data.get("kind", "synthetic")
    if kind == "synthetic":
        return SyntheticConfig.from_dict(data)
    if kind in FILE_KINDS:
        return FilesConfig.from_dict(data)
    raise DataError(f"data.kind: {kind!r} is not valid; expected synthetic or one of {', '.join(FILE_KINDS)}")


def load_data(config: Any) -> SegmentationData:
    """Materialise the data a config describes (deterministic for a given config and files)."""
    from trainers._files import FilesConfig, load_files
    from trainers._synthetic import make_synthetic

    if isinstance(config, FilesConfig):
        return load_files(config)
    return make_synthetic(config)
