"""In-memory segmentation data and the JSON-able configs that produce it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from trainers._errors import DataError


@dataclass(frozen=True)
class SegmentationData:
    """Images ``(N, C, *spatial)`` float32 and labels ``(N, 1, *spatial)`` int64, split train/val."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    num_classes: int

    @property
    def spatial_dims(self) -> int:
        return self.train_images.ndim - 2

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``(C, *spatial)``: the size at which costs are counted."""
        return tuple(int(s) for s in self.train_images.shape[1:])


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in synthetic 2D task: lesion-like blobs and vessel-like curves (see ``synthetic``)."""

    n_train: int = 96
    n_val: int = 32
    size: int = 64
    seed: int = 0
    kind: str = "synthetic"

    def __post_init__(self) -> None:
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
        known = tuple(f.name for f in fields(cls))
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise DataError(f"data.{unknown[0]}: unknown field; expected fields: {', '.join(known)}")
        return cls(**data)


DataConfig = SyntheticConfig


def data_config_from_dict(data: Mapping[str, Any]) -> DataConfig:
    """Rebuild a data config recorded in a study; ``kind`` selects the source."""
    kind = data.get("kind", "synthetic")
    if kind == "synthetic":
        return SyntheticConfig.from_dict(data)
    raise DataError(f"data.kind: {kind!r} is not valid; expected 'synthetic'")


def load_data(config: DataConfig) -> SegmentationData:
    """Materialise the data a config describes (deterministic for a given config)."""
    from trainers._synthetic import make_synthetic

    return make_synthetic(config)
