"""`nas search` from the command line, as a user runs it, on every data layout we read and with every
preset, on the real copies in ../shared/data (tiny budgets: two one-epoch trials each; marked slow).

nnU-Net raw layouts are written from the MSD and Kvasir copies into a temporary folder (links and
converted PNGs, never copies into the project). Each search must end with COMPLETE trials and record
the split it used and the network's input size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studies import load_study, open_storage, trial_records
from tests.conftest import SHARED_DATA
from tests.conftest import nas_process as nas

pytestmark = pytest.mark.slow

DRIVE, KVASIR, HIPPO = SHARED_DATA / "drive", SHARED_DATA / "kvasir_seg", SHARED_DATA / "msd_hippocampus"


def needs(*folders: Path) -> pytest.MarkDecorator:
    missing = [str(f) for f in folders if not f.is_dir()]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not present")


def search(tmp_path: Path, data: dict[str, Any], *extra: str, preset: str = "demo") -> dict[str, Any]:
    """Run a two-trial, one-epoch search of ``preset`` on ``data``; return the study's attributes after
    checking that every trial is COMPLETE."""
    (tmp_path / "data.json").write_text(json.dumps(data))
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    done = nas(
        "search",
        preset,
        "--study",
        "real",
        "--storage",
        storage,
        "--data",
        "data.json",
        "--trials",
        "2",
        "--epochs",
        "1",
        "--concurrency",
        "2",
        *extra,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = load_study(open_storage(storage, create=False), "real")
    # A grid enqueues its every architecture up front: what the budget did not reach stays WAITING.
    records = [r for r in trial_records(study) if r.state != "WAITING"]
    assert len(records) == 2 and {r.state for r in records} == {"COMPLETE"}, [(r.state, r.error) for r in records]
    attrs = dict(study.user_attrs)
    split = attrs["split"]
    assert split["train"] and split["val"] and not set(split["train"]) & set(split["val"])
    return attrs


# ---------------------------------------------------------------- layouts written for the tests


def nnunet_from_msd(root: Path, n: int) -> Path:
    """An nnU-Net v2 raw dataset (``CASE_0000.nii.gz``, ``channel_names``, labels by name) linking to
    the first ``n`` MSD hippocampus cases."""
    msd = json.loads((HIPPO / "dataset.json").read_text())
    out = root / "Dataset004_Hippocampus"
    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    for entry in msd["training"][:n]:
        case = Path(entry["image"]).name.removesuffix(".nii.gz")
        (out / "imagesTr" / f"{case}_0000.nii.gz").symlink_to((HIPPO / entry["image"]).resolve())
        (out / "labelsTr" / f"{case}.nii.gz").symlink_to((HIPPO / entry["label"]).resolve())
    labels = {name: int(value) for value, name in msd["labels"].items()}
    meta = {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": n, "file_ending": ".nii.gz"}
    (out / "dataset.json").write_text(json.dumps(meta))
    return out


def nnunet_from_kvasir(root: Path, n: int) -> Path:
    """A 2D nnU-Net v2 raw dataset as nnU-Net's natural-image conversion writes one: ``CASE_0000.png``
    holding R, G and B (three channel_names), and a label PNG of class indices 0/1."""
    from PIL import Image

    out = root / "Dataset120_Polyps"
    (out / "imagesTr").mkdir(parents=True)
    (out / "labelsTr").mkdir()
    for path in sorted((KVASIR / "images").glob("*.jpg"))[:n]:
        Image.open(path).convert("RGB").resize((160, 128)).save(out / "imagesTr" / f"{path.stem}_0000.png")
        mask = np.asarray(Image.open(KVASIR / "masks" / path.name).convert("L").resize((160, 128))) > 127
        Image.fromarray(mask.astype(np.uint8)).save(out / "labelsTr" / f"{path.stem}.png")
    meta = {
        "channel_names": {"0": "R", "1": "G", "2": "B"},
        "labels": {"background": 0, "polyp": 1},
        "numTraining": n,
        "file_ending": ".png",
    }
    (out / "dataset.json").write_text(json.dumps(meta))
    return out


def folder2d_from_drive(root: Path) -> Path:
    """DRIVE's training images as a plain ``images/`` + ``masks/`` folder (one size, 565×584)."""
    out = root / "vessels"
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    for image in sorted((DRIVE / "training" / "images").glob("*.tif")):
        number = image.name.split("_")[0]
        (out / "images" / f"{number}.tif").symlink_to(image.resolve())
        (out / "masks" / f"{number}.gif").symlink_to(DRIVE / "training" / "1st_manual" / f"{number}_manual1.gif")
    return out


# ---------------------------------------------------------------- every layout


@needs(DRIVE)
def test_drive_whole_images_are_padded_to_the_backbones_stride(tmp_path: Path) -> None:
    attrs = search(tmp_path, {"kind": "drive", "path": str(DRIVE), "channels": "green", "limit": 4})
    assert attrs["input_shape"] == [1, 592, 576]  # 584×565 padded to multiples of 16


@needs(DRIVE)
def test_folder2d_without_size_keeps_the_native_size(tmp_path: Path) -> None:
    folder = folder2d_from_drive(tmp_path)
    attrs = search(tmp_path, {"kind": "folder2d", "path": str(folder), "channels": "green", "limit": 4})
    assert attrs["input_shape"] == [1, 592, 576]


@needs(KVASIR)
def test_folder2d_of_mixed_sizes_trains_on_patches(tmp_path: Path) -> None:
    attrs = search(tmp_path, {"kind": "folder2d", "path": str(KVASIR), "patch": 64, "limit": 8})
    assert attrs["input_shape"] == [3, 64, 64]


@needs(HIPPO)
def test_nnunet_volumes(tmp_path: Path) -> None:
    root = nnunet_from_msd(tmp_path, 8)
    attrs = search(tmp_path, {"kind": "nnunet", "path": str(root)})
    assert len(attrs["input_shape"]) == 4 and len(attrs["split"]["train"]) + len(attrs["split"]["val"]) == 8


@needs(KVASIR)
def test_nnunet_2d_png(tmp_path: Path) -> None:
    root = nnunet_from_kvasir(tmp_path, 8)
    attrs = search(tmp_path, {"kind": "nnunet", "path": str(root)})
    assert attrs["input_shape"] == [3, 128, 160]


# ---------------------------------------------------------------- every preset on real data


# Each preset also covers a layout: msd volumes, DRIVE with patches, folder2d resized.


@needs(HIPPO)
def test_the_volumetric_preset_on_msd_hippocampus(tmp_path: Path) -> None:
    """MPU-Net's recipe on real volumes: its loss over four outputs (3 deep-supervision heads), Adam
    1e-4 with step halving, batch 1."""
    attrs = search(tmp_path, {"kind": "msd", "path": str(HIPPO), "limit": 8}, preset="volumetric")
    channels, *spatial = attrs["input_shape"]
    assert channels == 1 and len(spatial) == 3 and all(s % 16 == 0 for s in spatial)  # padded volumes
    train = attrs["train"]
    assert (train["loss"], train["optimizer"], train["lr"], train["schedule"]) == ("tversky_ce", "adam", 1e-4, "step")
    assert train["batch_size"] == 1 and train["warmup_fraction"] == 0.0
    study = load_study(open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=False), "real")
    specs = [r.spec for r in trial_records(study) if r.state == "COMPLETE"]
    assert specs and all(spec is not None and spec["deep_supervision"] == 3 for spec in specs)


@needs(DRIVE)
def test_the_ja_ablation_preset_on_drive_with_patches(tmp_path: Path) -> None:
    """The README's own DRIVE example (green channel, 64×64 patches, sliding-window validation)."""
    data = {"kind": "drive", "path": str(DRIVE), "channels": "green", "patch": 64, "limit": 6}
    attrs = search(tmp_path, data, preset="ja-ablation")
    assert attrs["sampler"] == "grid" and attrs["space"]["backbones"] == ["denseunet"]
    assert attrs["input_shape"] == [1, 64, 64]
    assert len(attrs["split"]["test"]) == 6 and all(c.startswith("test/") for c in attrs["split"]["test"])


@needs(KVASIR)
def test_the_attention_zoo_preset_on_kvasir_resized(tmp_path: Path) -> None:
    data = {"kind": "folder2d", "path": str(KVASIR), "size": 64, "limit": 12}
    attrs = search(tmp_path, data, "--set", "fidelity.grace_period=null", preset="attention-zoo")
    assert attrs["input_shape"] == [3, 64, 64]
    assert len(attrs["split"]["train"]) + len(attrs["split"]["val"]) == 12


# ---------------------------------------------------------------- what cannot be searched


@needs(KVASIR)
def test_mixed_sizes_without_size_or_patch_are_refused_writing_nothing(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text(json.dumps({"kind": "folder2d", "path": str(KVASIR), "limit": 6}))
    done = nas("search", "--data", "data.json", "--trials", "1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: data.json: data.size: the images have")
    assert "data.patch" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


@needs(DRIVE)
def test_a_patch_the_backbone_cannot_halve_is_refused_writing_nothing(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text(json.dumps({"kind": "drive", "path": str(DRIVE), "patch": 48}))
    done = nas("search", "--data", "data.json", "--set", "space.depths=[6]", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert (
        "nas: error: data.json: data.patch: 48 is not divisible by" in done.stderr
        and len(done.stderr.strip().splitlines()) == 1
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


@needs(HIPPO)
def test_a_patch_larger_than_the_volumes_is_refused_writing_nothing(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text(json.dumps({"kind": "msd", "path": str(HIPPO), "patch": 64, "limit": 4}))
    done = nas("search", "--data", "data.json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert (
        "nas: error: data.json: data.patch: 64 is larger than" in done.stderr
        and len(done.stderr.strip().splitlines()) == 1
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]
