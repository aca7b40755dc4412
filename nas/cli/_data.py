"""``--data``: the built-in synthetic task or a JSON file of data fields (shared by search, train, retrain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers import DataError, FilesConfig, SyntheticConfig, data_config_from_dict, read_json_object

SYNTHETIC = {"synthetic": 2, "synthetic3d": 3}


def data_config(text: str, **synthetic: Any) -> SyntheticConfig | FilesConfig:
    """``synthetic`` (2D images) or ``synthetic3d`` (3D volumes) give the built-in task with the
    ``synthetic`` fields; otherwise ``text`` names a JSON file whose relative ``path`` is taken
    relative to the file."""
    if text in SYNTHETIC:
        return SyntheticConfig(**synthetic, spatial_dims=SYNTHETIC[text])
    path = Path(text)
    if not path.is_file():
        raise DataError(f"--data: {text!r} is neither 'synthetic', 'synthetic3d' nor a JSON file of data fields")
    config = data_config_from_dict(read_json_object(path, "--data", "a JSON object of data fields"))
    if isinstance(config, FilesConfig) and not Path(config.path).is_absolute():
        config = FilesConfig.from_dict({**config.to_dict(), "path": str((path.parent / config.path).resolve())})
    return config
