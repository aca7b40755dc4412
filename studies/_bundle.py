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


#: The kinds of data on disk whose 2D images are files Pillow reads (PNG, JPEG, TIFF, GIF, ...).
IMAGE_FILE_KINDS = ("folder2d", "drive", "nnunet")

#: The study's ``data.channels`` as a Pillow conversion, the way ``trainers`` reads its images (``auto``:
#: one grey channel for single-channel files, RGB otherwise; ``green``: RGB, then the green channel).
_CONVERTERS = {
    "auto": "$lambda image: image.convert('F') if image.mode in ('1', 'L', 'I', 'I;16', 'F') else image.convert('RGB')",
    "gray": "$lambda image: image.convert('F')",
    "rgb": "$lambda image: image.convert('RGB')",
    "green": "$lambda image: image.convert('RGB')",
}


def reads_image_files(attrs: dict[str, Any], spatial_dims: int) -> bool:
    """Whether the study trained on 2D image files (then the bundle reads and writes them, e.g. PNG)."""
    data = attrs.get("data") or {}
    return spatial_dims == 2 and isinstance(data, dict) and data.get("kind") in IMAGE_FILE_KINDS


def _preprocessing(attrs: dict[str, Any], spatial_dims: int) -> list[dict[str, Any]]:
    """The study's preprocessing as MONAI transforms: its channels, CLAHE, per-image z-score, then
    the resize to ``data.size`` (2D), as ``trainers`` prepares its data (in that order)."""
    data = attrs.get("data") if isinstance(attrs.get("data"), dict) else {}
    assert isinstance(data, dict)
    if reads_image_files(attrs, spatial_dims):
        channels = str(data.get("channels", "auto"))
        # Rows stay rows (no swap of the first two axes, unlike MONAI's default for 2D files): the
        # network saw images as (C, H, W).
        reader = {"_target_": "PILReader", "reverse_indexing": False, "converter": _CONVERTERS.get(channels)}
        steps: list[dict[str, Any]] = [
            {"_target_": "LoadImaged", "keys": "image", "reader": reader, "image_only": True},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
        ]
        if channels == "green":
            steps.append({"_target_": "Lambdad", "keys": "image", "func": "$lambda x: x[1:2]"})
    else:
        steps = [
            {"_target_": "LoadImaged", "keys": "image", "image_only": True},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
        ]
    steps.append({"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"})
    if data.get("clahe"):
        steps.append({"_target_": "Lambdad", "keys": "image", "func": "$studies.bundle_clahe"})
    steps.append({"_target_": "NormalizeIntensityd", "keys": "image"})
    size = data.get("size")
    if spatial_dims == 2 and isinstance(size, int) and size > 0:
        # antialias like the study's torch resize; undone on the prediction by Invertd (bilinear, before argmax)
        steps.append(
            {
                "_target_": "Resized",
                "keys": "image",
                "spatial_size": [size, size],
                "mode": "bilinear",
                "anti_aliasing": True,
            }
        )
    return steps


def _network(files: dict[str, bool]) -> dict[str, Any]:
    """How the bundle gets its network: the ``torch.export`` program where it was written (it needs no
    attention-nas and is already in eval mode), else TorchScript, else built from ``arch`` with the weights."""
    if files.get("program"):
        return {
            # move_to_device_pass also moves the device constants the program recorded (tensors made
            # on the input's device inside forward), which .to() alone would leave on the CPU
            "network": "$torch.export.passes.move_to_device_pass(torch.export.load(@bundle_root + "
            "'/models/model.pt2'), @device).module()",
            "run": ["$@segment"],
        }
    if files.get("torchscript"):
        return {
            "network": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location=@device).eval()",
            "run": ["$@segment"],
        }
    return {"network": "$@network_def.to(@device)", "run": ["$@load_weights", "$@network.eval()", "$@segment"]}


def _inference(record: Any, attrs: dict[str, Any], files: dict[str, bool] | None = None) -> dict[str, Any]:
    """Read every image under ``dataset_dir``, preprocess it as the study did, segment it with a
    sliding window at the study's input size, and save the argmax at the image's own size under
    ``output_dir`` (both overridable: ``--dataset_dir DIR``). A study of 2D image files reads and
    writes them with Pillow (``.png`` out); other studies read what MONAI reads and write NIfTI.
    When the study evaluated with ``tta="flips"``, the window runs on every flipped copy and the
    saved argmax is that of the mean probabilities (``trainers.FlipInferer``), as in its metrics."""
    spatial_dims = int(record.spec.get("spatial_dims", 2))
    shape = list(attrs.get("input_shape") or [])
    roi = shape[1:] or [64] * spatial_dims
    window = {"_target_": "SlidingWindowInferer", "roi_size": roi, "sw_batch_size": 4, "overlap": 0.25}
    inferer = {"_target_": "trainers.FlipInferer", "inferer": window} if study_tta(attrs) == "flips" else window
    image_files = reads_image_files(attrs, spatial_dims)
    post: list[dict[str, Any]] = [
        # back to the image's own size and orientation (undoes the resize), then the argmax
        {
            "_target_": "Invertd",
            "keys": "pred",
            "transform": "@preprocessing",
            "orig_keys": "image",
            "nearest_interp": False,
            "to_tensor": True,
        },
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
    ]
    if image_files:
        # Pillow's writer swaps the first two axes back (its default): the file keeps the input's rows.
        post.append({"_target_": "Transposed", "keys": "pred", "indices": [0, 2, 1]})
    post.append(
        {
            "_target_": "SaveImaged",
            "keys": "pred",
            "output_dir": "@output_dir",
            "output_postfix": "seg",
            "output_ext": "@output_ext",
            "output_dtype": "$numpy.uint8",
            "separate_folder": False,
            "print_log": False,
            **({"writer": "PILWriter", "scale": None} if image_files else {}),
        }
    )
    return {
        "imports": [
            "$import glob",
            "$import os",
            "$import numpy",
            "$import torch",
            "$import torch.export.passes",
            "$import monai",
            "$import search_spaces",
        ]
        + (["$import studies"] if (attrs.get("data") or {}).get("clahe") else []),
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "arch": dict(record.spec),
        "network_def": "$search_spaces.build_model(search_spaces.ArchSpec.from_dict(@arch))",
        **_network(files or {}),
        "ckpt_path": "$@bundle_root + '/models/model.pt'",
        "load_weights": "$@network.load_state_dict(torch.load(@ckpt_path, map_location=@device, weights_only=True))",
        "dataset_dir": "$@bundle_root + '/sample'",
        "output_dir": "$@bundle_root + '/eval'",
        "output_ext": ".png" if image_files else ".nii.gz",
        "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@dataset_dir, '*'))) if os.path.isfile(f)]",
        "preprocessing": {"_target_": "Compose", "transforms": _preprocessing(attrs, spatial_dims)},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
        "inferer": inferer,
        "postprocessing": {"_target_": "Compose", "transforms": post},
        "segment": (
            "$[@postprocessing({'image': item['image'], 'pred': pred}) for batch in @dataloader for item, pred in "
            "zip(monai.data.decollate_batch(batch), @inferer(batch['image'].to(@device), @network).cpu())]"
        ),
        "initialize": ["$torch.set_grad_enabled(False)", "$os.makedirs(@output_dir, exist_ok=True)"],
    }


def bundle_clahe(image: Any) -> Any:
    """The study's CLAHE (``data.clahe``) on a (C, H, W) image, as its bundle's preprocessing applies it."""
    import numpy as np
    import torch

    from trainers._files import clahe  # the study's own function, so the bundle cannot drift from it

    if not isinstance(image, torch.Tensor):
        return torch.from_numpy(clahe(np.asarray(image, dtype=np.float32)))
    result = image.clone()  # keeps a MetaTensor's metadata (file name, applied transforms) for Invertd
    result[...] = torch.from_numpy(clahe(np.asarray(image.detach().cpu(), dtype=np.float32)))
    return result


def write_bundle(
    target: Path,
    study: str,
    number: int,
    record: Any,
    attrs: dict[str, Any],
    weights: Path,
    *,
    program: Path | None = None,
    torchscript: Path | None = None,
) -> Path:
    """Write the bundle of an exported trial under ``target/bundle`` and return that folder. Its network
    is the ``torch.export`` program ``program`` where there is one, else the TorchScript module, else
    the architecture built from ``arch`` with ``weights``."""
    root = target / BUNDLE_DIR
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "metadata.json").write_text(
        json.dumps(_metadata(study, number, record, attrs), indent=2) + "\n"
    )
    files = {"program": program is not None, "torchscript": torchscript is not None}
    (root / "configs" / "inference.json").write_text(json.dumps(_inference(record, attrs, files), indent=2) + "\n")
    shutil.copyfile(weights, root / "models" / "model.pt")
    if program is not None:
        shutil.copyfile(program, root / "models" / "model.pt2")
    if torchscript is not None:
        shutil.copyfile(torchscript, root / "models" / "model.ts")
    spatial_dims = int(record.spec.get("spatial_dims", 2))
    kind = (
        "2D image files (PNG, JPEG, TIFF: `*_seg.png` out)"
        if reads_image_files(attrs, spatial_dims)
        else ("NIfTI files (`*_seg.nii.gz` out)")
    )
    network = (
        "`models/model.pt2` (a `torch.export` program)"
        if program is not None
        else "`models/model.ts` (TorchScript)"
        if torchscript is not None
        else "`network_def` (built by attention-nas) with `models/model.pt`"
    )
    (root / "README.md").write_text(
        "# MONAI bundle\n\n"
        f"Segment every image in a folder ({kind}, one file per image) and write `*_seg` files holding each "
        "pixel's class index, at each image's own size. The bundle preprocesses like the study: the same "
        "channels, per-image intensity z-score and resize to the study's size (undone on the segmentation):\n\n"
        "```\npython -m monai.bundle run --config_file configs/inference.json --bundle_root . "
        "--dataset_dir /path/to/images --output_dir /path/to/out\n```\n\n"
        f"The network is {network}. `network_def` builds the same architecture with attention-nas "
        "(`pip install attention-nas`), for `verify_net_in_out` and fine-tuning.\n"
    )
    return root
