"""MAE, mIoU with the background, and HD95 in millimetres from the image spacing: each against a
value computed by hand or by brute force, and the spacing itself from the files' headers to the
reported metric."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from search_spaces import ArchSpec, build_model
from tests.conftest import SHARED_DATA
from trainers import (
    IMAGE_METRICS,
    METRIC_NAMES,
    FilesConfig,
    SyntheticConfig,
    TrainConfig,
    evaluate_metrics,
    load_files,
    make_synthetic,
    segmentation_metrics,
    train,
)

ANISOTROPIC = (2.0, 1.0, 0.5)


def as_probabilities(p: np.ndarray) -> torch.Tensor:
    """(1, 2, *spatial) ``[1 - p, p]`` from a foreground probability map."""
    fg = torch.from_numpy(np.asarray(p, dtype=np.float32))
    return torch.stack([1 - fg, fg]).unsqueeze(0)


def as_labels(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask.astype(np.int64))[None, None]


# ---------------------------------------------------------------- MAE and mIoU by hand


def six_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """p(class 1) and truth on a 2x3 image: TP at (0,0), FN at (0,1), FP at (0,2), three TN."""
    p = np.array([[0.9, 0.4, 0.6], [0.2, 0.1, 0.3]])
    return as_probabilities(p), as_labels(np.array([[1, 1, 0], [0, 0, 0]]))


def test_mae_is_the_mean_absolute_error_of_the_probability_map() -> None:
    probabilities, labels = six_pixels()
    m = segmentation_metrics(probabilities, labels, hd95=False)
    # |0.9-1| + |0.4-1| + |0.6-0| + 0.2 + 0.1 + 0.3 over six pixels
    assert m.mean["mae"] == pytest.approx((0.1 + 0.6 + 0.6 + 0.2 + 0.1 + 0.3) / 6)
    fov = torch.ones_like(labels, dtype=torch.bool)
    fov[0, 0, 0, 2] = False  # the false positive (error 0.6) lies outside
    assert segmentation_metrics(probabilities, labels, mask=fov, hd95=False).mean["mae"] == pytest.approx(1.3 / 5)


def test_mae_is_per_image_then_averaged() -> None:
    """Image A errs 0.5 on both its pixels; image B errs 0.1 on the one pixel inside its field of
    view: (0.5 + 0.1) / 2 per image, where pooling the pixels would give (0.5 + 0.5 + 0.1) / 3."""
    fg = torch.tensor([0.5, 0.5, 0.9, 1.0]).reshape(2, 1, 1, 2)
    labels = torch.tensor([1, 0, 1, 1]).reshape(2, 1, 1, 2)
    fov = torch.tensor([True, True, True, False]).reshape(2, 1, 1, 2)
    m = segmentation_metrics(torch.cat([1 - fg, fg], dim=1), labels, mask=fov, hd95=False)
    assert m.mean["mae"] == pytest.approx((0.5 + 0.1) / 2)


def test_miou_counts_the_background_and_iou_does_not() -> None:
    probabilities, labels = six_pixels()
    m = segmentation_metrics(probabilities, labels, hd95=False)
    # foreground: predicted {0, 2}, truth {0, 1}: 1 / 3; background: predicted {1, 3, 4, 5}, truth {2, 3, 4, 5}: 3 / 5
    assert m.mean["iou"] == pytest.approx(1 / 3)
    assert m.mean["miou"] == pytest.approx((1 / 3 + 3 / 5) / 2)
    assert set(m.mean) == set(METRIC_NAMES) and all("miou" not in v for v in m.per_class.values())


def test_miou_with_three_classes_skips_a_class_absent_from_an_image() -> None:
    """Image A: 0 0 1 1 predicted 0 1 1 1 (no class 2 anywhere); image B: 2 2 0 0 predicted exactly."""
    labels = torch.tensor([[0, 0, 1, 1], [2, 2, 0, 0]]).reshape(2, 1, 1, 4)
    predicted = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    probabilities = torch.nn.functional.one_hot(predicted, 3).permute(0, 2, 1).float().reshape(2, 3, 1, 4)
    m = segmentation_metrics(probabilities, labels, hd95=False)
    image_a = (1 / 2 + 2 / 3) / 2  # background 1/2, class 1 2/3, class 2 undefined
    image_b = 1.0  # background and class 2 exact, class 1 undefined
    assert m.mean["miou"] == pytest.approx((image_a + image_b) / 2)


# ---------------------------------------------------------------- HD95 in millimetres


def test_hd95_in_mm_of_two_slabs_a_known_distance_apart() -> None:
    """Two slabs two voxels thick, three voxels apart along one axis, spanning the volume along the
    others: every voxel is on a surface, half of them 2 and half 3 voxels from the other slab, so the
    95th percentile is 3 voxels: 3 × that axis's spacing in millimetres."""
    for axis, expected in zip(range(3), (6.0, 3.0, 1.5), strict=True):
        truth, pred = np.zeros((10, 10, 10), bool), np.zeros((10, 10, 10), bool)
        index_t, index_p = [slice(None)] * 3, [slice(None)] * 3
        index_t[axis], index_p[axis] = slice(2, 4), slice(5, 7)
        truth[tuple(index_t)], pred[tuple(index_p)] = True, True
        m = segmentation_metrics(as_probabilities(pred * 0.8 + 0.1), as_labels(truth), spacing=ANISOTROPIC).mean
        assert m["hd95"] == pytest.approx(3.0)
        assert m["hd95_mm"] == pytest.approx(expected), axis


def surface(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` with a face-neighbour outside it (or on the volume's border), as indices."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis, step in itertools.product(range(3), (-1, 1)):
        inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(mask & ~inner).astype(float)


def brute_hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Surface voxels scaled by the spacing; every pairwise distance; the larger directed 95th percentile."""
    a, b = surface(pred) * spacing, surface(truth) * spacing
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95)))


def ellipsoid(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    centre = [rng.uniform(0.35 * n, 0.65 * n) for n in shape]
    radii = [rng.uniform(0.15 * n, 0.3 * n) for n in shape]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) < 1


@pytest.mark.parametrize("seed", range(3))
def test_hd95_in_mm_matches_a_brute_force_computation_with_anisotropic_spacing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (12, 16, 20)
    truth, pred = ellipsoid(rng, shape), ellipsoid(rng, shape)
    m = segmentation_metrics(as_probabilities(pred * 0.8 + 0.1), as_labels(truth), spacing=ANISOTROPIC).mean
    assert m["hd95_mm"] == pytest.approx(brute_hd95(pred, truth, ANISOTROPIC), abs=1e-4)
    assert m["hd95"] == pytest.approx(brute_hd95(pred, truth, (1.0, 1.0, 1.0)), abs=1e-4)
    assert abs(m["hd95_mm"] - m["hd95"]) > 0.1  # the spacing matters on these shapes


def test_hd95_in_mm_takes_each_images_own_spacing() -> None:
    rng = np.random.default_rng(7)
    shape = (12, 16, 20)
    pairs = [(ellipsoid(rng, shape), ellipsoid(rng, shape)) for _ in range(2)]
    spacings = [ANISOTROPIC, (0.7, 1.3, 1.0)]
    probabilities = torch.cat([as_probabilities(p * 0.8 + 0.1) for p, _ in pairs])
    labels = torch.cat([as_labels(t) for _, t in pairs])
    m = segmentation_metrics(probabilities, labels, spacing=spacings).mean
    expected = [brute_hd95(p, t, s) for (p, t), s in zip(pairs, spacings, strict=True)]
    assert m["hd95_mm"] == pytest.approx(float(np.mean(expected)), abs=1e-4)
    with pytest.raises(ValueError, match="spacing: 1 spacings for 2 images"):
        segmentation_metrics(probabilities, labels, spacing=[ANISOTROPIC])


def test_a_missed_structure_counts_as_the_diagonal_in_mm() -> None:
    labels = torch.zeros(1, 1, 4, 6, 10, dtype=torch.long)
    labels[0, 0, 1:3, 2:4, 2:4] = 1
    nothing = torch.zeros(1, 2, 4, 6, 10)
    nothing[:, 0] = 1.0
    m = segmentation_metrics(nothing, labels, spacing=ANISOTROPIC).mean
    assert m["hd95"] == pytest.approx(math.sqrt(4**2 + 6**2 + 10**2))
    assert m["hd95_mm"] == pytest.approx(math.sqrt((4 * 2.0) ** 2 + (6 * 1.0) ** 2 + (10 * 0.5) ** 2))


class Threshold(torch.nn.Module):
    """Logits [0, image]: foreground where the (first channel of the) image is positive."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), self.scale * x[:, :1]], dim=1)


def test_images_of_different_sizes_are_measured_each_with_its_spacing() -> None:
    rng = np.random.default_rng(3)
    shapes = [(12, 16, 20), (16, 12, 12)]
    truths = [ellipsoid(rng, s) for s in shapes]
    preds = [ellipsoid(rng, s) for s in shapes]
    images = [torch.from_numpy(np.where(p, 1.0, -1.0).astype(np.float32))[None] for p in preds]
    labels = [as_labels(t)[0] for t in truths]
    spacings = [ANISOTROPIC, (1.0, 3.0, 1.0)]
    m = evaluate_metrics(Threshold(), images, labels, window=(8, 8, 8), spacing=spacings).mean  # as with patches
    expected = [brute_hd95(p, t, s) for p, t, s in zip(preds, truths, spacings, strict=True)]
    assert m["hd95_mm"] == pytest.approx(float(np.mean(expected)), abs=1e-4)
    each = [
        segmentation_metrics(as_probabilities(np.where(p, 0.7311, 0.2689)), as_labels(t))
        for p, t in zip(preds, truths, strict=True)
    ]
    assert m["miou"] == pytest.approx(float(np.mean([e.mean["miou"] for e in each])), abs=1e-6)
    assert set(m) == set(METRIC_NAMES) and IMAGE_METRICS == ("miou",)


# ---------------------------------------------------------------- spacing from the files


def write_msd(root: Path, spacings: list[tuple[float, float, float]]) -> Path:
    """An MSD task of small volumes, case i with voxel size ``spacings[i]`` in its header."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i, spacing in enumerate(spacings):
        image = rng.normal(size=(12, 14, 10)).astype(np.float32)
        label = np.zeros((12, 14, 10), np.uint8)
        label[3:8, 4:9, 2:7] = 1
        affine = np.diag([*spacing, 1.0])
        nib.save(nib.Nifti1Image(image, affine), str(root / "imagesTr" / f"case_{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(label, affine), str(root / "labelsTr" / f"case_{i:03d}.nii.gz"))
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    meta = {"labels": {"0": "background", "1": "organ"}, "modality": {"0": "MRI"}, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def header_spacing(path: Path) -> tuple[float, ...]:
    """Read independently of the loader: the lengths of the affine's columns."""
    import nibabel as nib

    image: Any = nib.load(str(path))
    affine = image.affine
    return tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))


def test_each_volume_keeps_its_header_spacing_in_axis_order(tmp_path: Path) -> None:
    spacings = [(2.0, 1.0, 0.5 + 0.1 * i) for i in range(6)]
    root = write_msd(tmp_path / "Task", spacings)
    data = load_files(FilesConfig(kind="msd", path=str(root), val_fraction=0.34, test_fraction=0.2))
    assert data.split is not None and data.val_spacing is not None and data.test_spacing is not None
    for part, found in (("val", data.val_spacing), ("test", data.test_spacing)):
        assert len(found) == len(data.split[part]) > 0
        for case, spacing in zip(data.split[part], found, strict=True):
            expected = header_spacing(root / "imagesTr" / f"{case}.nii.gz")
            assert spacing == pytest.approx(expected), case
    assert data.val_images[0].shape[1:] == (16, 16, 16)  # padded: the spacing is unchanged by padding


@pytest.mark.skipif(not (SHARED_DATA / "msd_hippocampus").is_dir(), reason="../shared/data/msd_hippocampus is absent")
def test_msd_hippocampus_spacing_is_its_nifti_headers() -> None:
    root = SHARED_DATA / "msd_hippocampus"
    data = load_files(FilesConfig(kind="msd", path=str(root), limit=8, test_fraction=0.25))
    files = {
        Path(e["image"]).name.split(".")[0]: root / e["image"]
        for e in json.loads((root / "dataset.json").read_text())["training"]
    }
    assert data.split is not None and data.val_spacing is not None and data.test_spacing is not None
    for part, found in (("val", data.val_spacing), ("test", data.test_spacing)):
        assert len(found) == len(data.split[part]) > 0
        for case, spacing in zip(data.split[part], found, strict=True):
            assert spacing == pytest.approx(header_spacing(files[case]))


def write_image(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path, quality=95)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_resized_images_measure_in_pixels_of_the_original_file(tmp_path: Path, suffix: str) -> None:
    """40×60 files resized to 32×32: a pixel of the network's input is 1.25 × 1.875 pixels of the file
    (JPEGs decode at a reduced scale first when resized; the spacing still refers to the file)."""
    height, width = (40, 60) if suffix == ".png" else (200, 300)
    rng = np.random.default_rng(0)
    for i in range(5):
        write_image(tmp_path / "images" / f"c{i}{suffix}", rng.integers(0, 255, (height, width, 3)))
        mask = np.zeros((height, width))
        mask[height // 4 : height // 2, width // 4 : width // 2] = 255
        write_image(tmp_path / "masks" / f"c{i}{suffix}", mask)
    resized = load_files(FilesConfig(kind="folder2d", path=str(tmp_path), size=32, test_fraction=0.2))
    assert resized.val_spacing == [(height / 32, width / 32)] * len(resized.val_images)
    assert resized.test_spacing == [(height / 32, width / 32)] * len(resized.test_images)
    if suffix == ".png":
        whole = load_files(FilesConfig(kind="folder2d", path=str(tmp_path)))
        assert whole.val_spacing == [(1.0, 1.0)] * len(whole.val_images)


def test_training_reports_hd95_in_mm_from_the_datas_spacing() -> None:
    """The data's per-image spacing reaches the validation and test metrics ``train`` measures."""
    torch.set_num_threads(1)
    data = make_synthetic(SyntheticConfig(n_train=8, n_val=4, n_test=4, size=32, seed=0))
    data = dataclasses.replace(
        data, val_spacing=[(2.0, 0.5)] * 4, test_spacing=[(0.5 + 0.25 * i, 3.0) for i in range(4)]
    )
    model = build_model(ArchSpec(channels=(8, 16)))
    result = train(model, data, TrainConfig(epochs=2, batch_size=4, head_prior="off"))
    assert result.metrics is not None and result.test_metrics is not None
    model.load_state_dict(result.best_state)
    for measured, images, labels, spacing in (
        (result.metrics, data.val_images, data.val_labels, data.val_spacing),
        (result.test_metrics, data.test_images, data.test_labels, data.test_spacing),
    ):
        assert not math.isnan(measured.mean["hd95_mm"])
        again = evaluate_metrics(model, images, labels, spacing=spacing).mean
        assert measured.mean["hd95_mm"] == pytest.approx(again["hd95_mm"])
        assert measured.mean["hd95_mm"] != pytest.approx(measured.mean["hd95"])
