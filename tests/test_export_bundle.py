"""The exported MONAI bundle run the way a user runs it (``python -m monai.bundle run --config_file
configs/inference.json --dataset_dir ...`` in the bundle's folder) on the image kinds studies train
on: 2D image files (PNG) with the study's resize, and NIfTI volumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import torch.nn.functional as F

from search_spaces import ArchSpec, build_model
from studies import ATTR_WEIGHTS, create_study, export_trial, open_storage
from tests._studyfactory import add_trial
from tests.conftest import SHARED_DATA

STUDY_SIZE = 32
NATIVE = (48, 80)  # (H, W) of the files: not square and not the study's size, so a swap of axes shows


def monai_run(bundle: Path, images: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            "configs/inference.json",
            "--dataset_dir",
            str(images),
            "--output_dir",
            str(out),
        ],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=600,
    )


def disc(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc on a noisy background, as an 8-bit grey image, and its mask."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = rng.uniform(0.3, 0.7) * shape[0], rng.uniform(0.3, 0.7) * shape[1]
    r = rng.uniform(0.15, 0.25) * min(shape)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.int64)
    image = np.clip(70 + 110 * mask + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
    return image, mask


def zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / x.std(unbiased=False)


def study_input(image: np.ndarray) -> torch.Tensor:
    """What the study's data pipeline feeds the network: z-score at the file's size, then the resize."""
    x = zscore(torch.from_numpy(image.astype(np.float32)))[None, None]
    return F.interpolate(x, size=(STUDY_SIZE, STUDY_SIZE), mode="bilinear", antialias=True, align_corners=False)


def trained_unet(rng: np.random.Generator) -> tuple[ArchSpec, torch.nn.Module]:
    """A small U-Net that has learnt to segment the discs at the study's size (a few seconds on CPU)."""
    spec = ArchSpec(channels=(8, 16, 32))
    torch.manual_seed(0)
    model = build_model(spec)
    pairs = [disc(rng, NATIVE) for _ in range(32)]
    x = torch.cat([study_input(image) for image, _ in pairs])
    y = torch.cat(
        [
            F.interpolate(torch.from_numpy(m)[None, None].float(), size=(STUDY_SIZE,) * 2, mode="nearest")
            for _, m in pairs
        ]
    ).long()[:, 0]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        optimiser.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimiser.step()
    return spec, model.eval()


def study_with(tmp_path: Path, spec: ArchSpec, model: torch.nn.Module, attrs: dict) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    study = create_study(storage, "bundle", attrs=attrs)
    number = add_trial(study, spec, (0.8, 0.05), weights_dir=tmp_path)
    torch.save(model.state_dict(), study.trials[number].user_attrs[ATTR_WEIGHTS])
    return study


def test_a_png_study_bundle_segments_png_files_at_their_own_size_with_the_studys_resize(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    spec, model = trained_unet(rng)
    data = {"kind": "folder2d", "path": str(tmp_path / "data"), "size": STUDY_SIZE, "channels": "auto"}
    study = study_with(tmp_path, spec, model, {"data": data, "input_shape": [1, STUDY_SIZE, STUDY_SIZE]})
    bundle = export_trial(study, 0, tmp_path / "export") / "bundle"
    images = tmp_path / "frames"
    images.mkdir()
    cases = {f"{543 + i}": disc(rng, NATIVE) for i in range(3)}
    for name, (image, _) in cases.items():
        Image.fromarray(image).save(images / f"{name}.png")

    done = monai_run(bundle, images, tmp_path / "eval")
    assert done.returncode == 0, done.stderr[-3000:]
    for name, (image, mask) in cases.items():
        saved = np.asarray(Image.open(tmp_path / "eval" / f"{name}_seg.png"))
        assert saved.shape == NATIVE, f"{name}_seg.png is {saved.shape}, the image {NATIVE}"
        with torch.no_grad():
            logits = model(study_input(image))
            expected = F.interpolate(logits, size=NATIVE, mode="bilinear", align_corners=False).argmax(1)[0].numpy()
            native = model(zscore(torch.from_numpy(image.astype(np.float32)))[None, None]).argmax(1)[0].numpy()
        agreement = (saved == expected).mean()
        dice = 2 * ((saved == 1) & (mask == 1)).sum() / ((saved == 1).sum() + (mask == 1).sum())
        # MONAI's resize smooths before down-sampling unlike torch's antialias: boundary pixels may differ
        assert agreement > 0.97, f"{name}: {agreement:.3f} of the pixels agree with the study's pipeline"
        assert dice > 0.8, f"{name}: Dice {dice:.3f} against the disc"
        assert agreement > (saved == native).mean() or (native == expected).all()


def test_the_bundle_uses_the_torch_export_program_and_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    spec = ArchSpec(channels=(8, 16))
    model = build_model(spec).eval()
    del rng
    study = study_with(tmp_path, spec, model, {"data": {"kind": "synthetic"}, "input_shape": [1, 32, 32]})
    bundle = export_trial(study, 0, tmp_path / "export") / "bundle"
    inference = json.loads((bundle / "configs" / "inference.json").read_text())
    assert "model.pt2" in inference["network"] and (bundle / "models" / "model.pt2").is_file()
    assert inference["output_ext"] == ".nii.gz"
    assert "torch.export" in (bundle / "README.md").read_text()


HIPPOCAMPUS = SHARED_DATA / "msd_hippocampus"


@pytest.mark.skipif(not HIPPOCAMPUS.is_dir(), reason="../shared/data/msd_hippocampus is absent")
def test_a_volume_study_bundle_segments_nifti_volumes(tmp_path: Path) -> None:
    import shutil

    import nibabel as nib
    from monai.inferers import SlidingWindowInferer

    spec = ArchSpec(spatial_dims=3, channels=(4, 8), out_channels=3)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    data = {"kind": "msd", "path": str(HIPPOCAMPUS), "classes": 3}
    study = study_with(tmp_path, spec, model, {"data": data, "input_shape": [1, 16, 16, 16]})
    bundle = export_trial(study, 0, tmp_path / "export") / "bundle"
    images = tmp_path / "volumes"
    images.mkdir()
    chosen = sorted(p for p in (HIPPOCAMPUS / "imagesTr").glob("*.nii.gz") if not p.name.startswith("."))[:2]
    for path in chosen:
        shutil.copyfile(path, images / path.name)

    done = monai_run(bundle, images, tmp_path / "eval")
    assert done.returncode == 0, done.stderr[-3000:]
    window = SlidingWindowInferer(roi_size=[16, 16, 16], sw_batch_size=4, overlap=0.25)
    for path in chosen:
        volume = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
        saved = np.asarray(nib.load(str(tmp_path / "eval" / path.name.replace(".nii.gz", "_seg.nii.gz"))).dataobj)
        assert saved.squeeze().shape == volume.shape
        with torch.no_grad():
            expected = window(zscore(torch.from_numpy(volume))[None, None], model).argmax(1)[0].numpy()
        assert (saved.squeeze() == expected).mean() > 0.99  # MONAI's std is unbiased, the study's not


def test_the_bundles_clahe_keeps_the_images_metadata() -> None:
    from monai.data import MetaTensor

    from studies import bundle_clahe

    image = MetaTensor(torch.rand(1, 32, 40) * 200, meta={"filename_or_obj": "frame.png"})
    out = bundle_clahe(image)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "frame.png"
    assert out.shape == image.shape and float(out.min()) >= 0 and float(out.max()) <= 1
