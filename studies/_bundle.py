"""An exported trial as a MONAI bundle: ``configs/metadata.json``, ``configs/inference.json`` and
``models/model.pt``, runnable with ``python -m monai.bundle run`` and checked by ``verify_metadata``.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

#: The MONAI bundle metadata schema the export follows (draft 2019-09; MONAI's current one).
SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
BUNDLE_DIR = "bundle"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def study_tta(attrs: Any) -> str:
    """The test-time augmentation a study evaluated with: ``none`` or ``flips`` (``none`` before it existed)."""
    train = attrs.get("train") if isinstance(attrs, dict) else None
    return str(train.get("tta", "none")) if isinstance(train, dict) else "none"


def _metadata(study: str, number: int, record: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    spec = dict(record.spec)
    shape = list(attrs.get("input_shape") or [])
    channels, spatial = (shape[0], shape[1:]) if shape else (spec.get("in_channels", 1), [])
    classes = int(spec.get("out_channels", 2))
    data = attrs.get("data") or {}
    packages = {"attention-nas": _version("attention-nas"), "nibabel": _version("nibabel")}
    tensor = {"type": "image", "dtype": "float32", "is_patch_data": bool(spatial), "spatial_shape": spatial}
    return {
        "schema": SCHEMA_URL,
        "version": "0.1.0",
        "changelog": {"0.1.0": f"exported from study {study}, trial {number}"},
        "monai_version": _version("monai"),
        "pytorch_version": _version("torch"),
        "numpy_version": _version("numpy"),
        # Both names: the 2022 schema asks for the first, the 2024 one for the second.
        "optional_packages_version": {},
        "required_packages_version": packages,
        "task": f"{spec.get('spatial_dims', 2)}D segmentation into {classes} classes ({data.get('kind', 'data')})",
        "description": f"{record.label}: an architecture found by attention-nas (study {study}, trial {number}), "
        "trained at the search's budget; retrain it at full budget before clinical use.",
        "authors": "attention-nas",
        "copyright": "the study's owner",
        "data_source": json.dumps(data, sort_keys=True),
        "data_type": "nibabel" if spec.get("spatial_dims") == 3 else "image",
        "image_classes": f"{channels} channel(s), intensities z-score normalised per image",
        "label_classes": ", ".join(f"{c}: {'background' if c == 0 else 'class ' + str(c)}" for c in range(classes)),
        "pred_classes": (
            f"{classes} channels of class probabilities, averaged over every combination of flipped spatial axes "
            "(test-time augmentation, as the study evaluated); the saved segmentation is their argmax"
            if study_tta(attrs) == "flips"
            else f"{classes} channels of logits; the saved segmentation is their argmax"
        ),
        "eval_metrics": {"val_mean_dice": record.dice},
        "intended_use": "Research; the weights come from a search budget, not a full training run",
        "references": ["attention-nas (study export)"],
        "network_data_format": {
            "inputs": {
                "image": {
                    **tensor,
                    "format": "magnitude",
                    "num_channels": channels,
                    "value_range": [],
                    "channel_def": {str(c): f"channel {c}" for c in range(channels)},
                }
            },
            "outputs": {
                "pred": {
                    **tensor,
                    "format": "segmentation",
                    "num_channels": classes,
                    "value_range": [],
                    "channel_def": {str(c): "background" if c == 0 else f"class {c}" for c in range(classes)},
                }
            },
        },
    }


def _inference(record: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    """Read every image under ``dataset_dir``, segment it with a sliding window at the study's input
    size, and save the argmax under ``output_dir`` (both overridable: ``--dataset_dir DIR``). When the
    study evaluated with ``tta="flips"``, the window runs on every flipped copy and the saved argmax
    is that of the mean probabilities (``trainers.FlipInferer``), as in the study's metrics."""
    shape = list(attrs.get("input_shape") or [])
    roi = shape[1:] or [64] * int(record.spec.get("spatial_dims", 2))
    window = {"_target_": "SlidingWindowInferer", "roi_size": roi, "sw_batch_size": 4, "overlap": 0.25}
    inferer = {"_target_": "trainers.FlipInferer", "inferer": window} if study_tta(attrs) == "flips" else window
    return {
        "imports": ["$import glob", "$import os", "$import torch", "$import search_spaces"],
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "arch": dict(record.spec),
        "network_def": "$search_spaces.build_model(search_spaces.ArchSpec.from_dict(@arch))",
        "network": "$@network_def.to(@device)",
        "ckpt_path": "$@bundle_root + '/models/model.pt'",
        "load_weights": "$@network.load_state_dict(torch.load(@ckpt_path, map_location=@device, weights_only=True))",
        "dataset_dir": "$@bundle_root + '/sample'",
        "output_dir": "$@bundle_root + '/eval'",
        "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@dataset_dir, '*')))]",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image"},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
                {"_target_": "NormalizeIntensityd", "keys": "image"},
            ],
        },
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
        "inferer": inferer,
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "meta_keys": "image_meta_dict",
                    "output_dir": "@output_dir",
                    "output_postfix": "seg",
                    "output_dtype": "$torch.uint8",
                    "separate_folder": False,
                    "print_log": False,
                },
            ],
        },
        "segment": (
            "$[@postprocessing({'pred': @inferer(batch['image'].to(@device), @network)[0], "
            "'image': batch['image'][0]}) for batch in @dataloader]"
        ),
        "initialize": ["$torch.set_grad_enabled(False)", "$os.makedirs(@output_dir, exist_ok=True)"],
        "run": ["$@load_weights", "$@network.eval()", "$@segment"],
    }


def write_bundle(target: Path, study: str, number: int, record: Any, attrs: dict[str, Any], weights: Path) -> Path:
    """Write the bundle of an exported trial under ``target/bundle`` and return that folder."""
    root = target / BUNDLE_DIR
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "metadata.json").write_text(
        json.dumps(_metadata(study, number, record, attrs), indent=2) + "\n"
    )
    (root / "configs" / "inference.json").write_text(json.dumps(_inference(record, attrs), indent=2) + "\n")
    shutil.copyfile(weights, root / "models" / "model.pt")
    (root / "README.md").write_text(
        "# MONAI bundle\n\n"
        "Segment every image in a folder (PNG/NIfTI/... as MONAI's LoadImage reads them, preprocessed like the "
        "study's data: same channels and intensity scale) and write `*_seg` files:\n\n"
        "```\npython -m monai.bundle run --config_file configs/inference.json --bundle_root . "
        "--dataset_dir /path/to/images --output_dir /path/to/out\n```\n\n"
        "`network_def` builds the architecture with attention-nas (`pip install attention-nas`); "
        "`../model.ts` is the same network as TorchScript, for deployment without it.\n"
    )
    return root
