"""Datasets on disk: layouts, deterministic splits, preprocessing, and bad input that names the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SHARED_DATA
from trainers import DataError, FilesConfig, data_config_from_dict, index_drive, load_files, split_cases
from trainers._files import clahe

NNUNET_META = {
    "channel_names": {"0": "T1", "1": "T2"},
    "labels": {"background": 0, "tumour": 1},
    "file_ending": ".nii.gz",
}


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def make_folder(
    root: Path, n: int = 6, size: tuple[int, int] = (40, 48), mask_values: tuple[int, ...] = (0, 255)
) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(root / "images" / f"case{i:02d}.png", rng.integers(0, 255, (*size, 3)))
        mask = np.full(size, mask_values[0])
        mask[5:20, 10:30] = mask_values[-1]
        write_png(root / "masks" / f"case{i:02d}.png", mask)
    return root


def test_folder2d_loads_normalised_images_and_binary_masks(tmp_path: Path) -> None:
    data = load_files(FilesConfig(kind="folder2d", path=str(make_folder(tmp_path)), val_fraction=0.34, seed=1))
    assert len(data.train_images) == 4 and len(data.val_images) == 2 and len(data.test_images) == 0
    image, label = data.train_images[0], data.train_labels[0]
    # Whole images are batched: padded to a multiple of pad_multiple (16), the padding outside the FOV.
    assert image.shape == (3, 48, 48) and label.shape == (1, 48, 48) and label.dtype == torch.int64
    assert data.train_masks is not None and data.val_masks is not None
    assert int(data.train_masks[0].sum()) == 40 * 48 and bool(data.train_masks[0][0, :40].all())
    assert float(image[:, 40:].abs().max()) == 0 and int(label[:, 40:].max()) == 0
    inside = image[:, :40]
    assert abs(float(inside.mean())) < 1e-4 and abs(float(inside.std()) - 1) < 1e-2  # per-image normalisation
    assert set(label.unique().tolist()) == {0, 1} and data.num_classes == 2
    assert data.split is not None and sorted(data.split["train"] + data.split["val"]) == [
        f"case{i:02d}" for i in range(6)
    ]


def test_resize_green_channel_and_patches(tmp_path: Path) -> None:
    root = make_folder(tmp_path)
    resized = load_files(FilesConfig(kind="folder2d", path=str(root), size=32, channels="green"))
    assert resized.train_images[0].shape == (1, 32, 32) and resized.train_labels[0].shape == (1, 32, 32)
    assert resized.input_shape == (1, 32, 32)
    patched = load_files(FilesConfig(kind="folder2d", path=str(root), patch=16, channels="gray"))
    assert patched.patch == (16, 16) and patched.input_shape == (1, 16, 16)
    assert patched.train_images[0].shape == (1, 40, 48)  # whole images: patches are cut per batch


def test_splits_are_deterministic_disjoint_and_fold_over_everything() -> None:
    ids = [f"c{i}" for i in range(20)]
    config = FilesConfig(kind="folder2d", path=".", val_fraction=0.25, test_fraction=0.2, seed=3)
    a, b = split_cases(ids, config), split_cases(list(reversed(ids)), config)
    assert a == b  # the order files are listed in does not matter
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (12, 4, 4)
    assert not set(a["train"]) & set(a["val"]) and not set(a["val"]) & set(a["test"])
    assert split_cases(ids, FilesConfig(kind="folder2d", path=".", seed=4)) != split_cases(ids, config)
    folds = [split_cases(ids, FilesConfig(kind="folder2d", path=".", folds=4, fold=k)) for k in range(4)]
    assert sorted(c for f in folds for c in f["val"]) == sorted(ids)  # every case validated exactly once
    assert all(not set(f["train"]) & set(f["val"]) for f in folds)


def test_config_round_trip_and_errors_name_the_field() -> None:
    config = FilesConfig(kind="drive", path="/data/drive", patch=64, channels="green")
    assert data_config_from_dict(config.to_dict()) == config
    for data, message in (
        ({"kind": "folder3d", "path": "."}, "data.kind: 'folder3d' is not valid; expected synthetic or one of"),
        ({"kind": "folder2d", "path": ".", "size": 100}, "data.size: 100 is not valid; expected a multiple of 16"),
        ({"kind": "folder2d", "path": ".", "channels": "blue"}, "data.channels: 'blue' is not valid"),
        ({"kind": "folder2d", "path": ".", "folds": 3, "fold": 3}, "data.folds/fold: 3/3 is not valid"),
        ({"kind": "folder2d", "path": ".", "colour": 1}, "data.colour: unknown field"),
        ({"kind": "folder2d"}, "needs 'kind' and 'path'"),
    ):
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            data_config_from_dict(data)


# ---------------------------------------------------------------- bad input: named files, nothing trains


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"images holds no images \(.png"):
        load_files(FilesConfig(kind="folder2d", path=str(tmp_path)))
    write_png(tmp_path / "no-masks" / "images" / "a.png", np.zeros((16, 16)))
    with pytest.raises(DataError, match=r"the mask folder .*no-masks/masks is not a directory"):
        load_files(FilesConfig(kind="folder2d", path=str(tmp_path / "no-masks")))
    with pytest.raises(DataError, match=r"data.path: .*nowhere is not a directory"):
        load_files(FilesConfig(kind="folder2d", path=str(tmp_path / "nowhere")))


def test_missing_and_extra_masks_are_listed_with_a_count(tmp_path: Path) -> None:
    root = make_folder(tmp_path, n=6)
    for i in range(5):
        (root / "masks" / f"case{i:02d}.png").unlink()
    with pytest.raises(DataError, match=r"5 images have no mask in .*: case00.png, case01.png, case02.png and 2 more"):
        load_files(FilesConfig(kind="folder2d", path=str(root)))
    other = make_folder(tmp_path / "extra", n=3)
    write_png(other / "masks" / "orphan.png", np.zeros((40, 48)))
    with pytest.raises(DataError, match=r"1 masks have no image in .*: orphan.png"):
        load_files(FilesConfig(kind="folder2d", path=str(other)))


def test_a_size_mismatch_names_both_files(tmp_path: Path) -> None:
    root = make_folder(tmp_path, n=3)
    write_png(root / "masks" / "case01.png", np.zeros((20, 20)))
    with pytest.raises(DataError, match=r"case01.png is \(40, 48\) but its mask case01.png is \(20, 20\)"):
        load_files(FilesConfig(kind="folder2d", path=str(root)))


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path, n=3)
    (root / "images" / "case02.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"cannot read .*case02.png"):
        load_files(FilesConfig(kind="folder2d", path=str(root)))


def test_label_values_outside_the_declared_classes_are_listed(tmp_path: Path) -> None:
    root = make_folder(tmp_path, n=4, mask_values=(0, 3))
    with pytest.raises(DataError, match=r"4 masks hold label values outside 0..2 \(classes 3\): case00.png \[0, 3\]"):
        load_files(FilesConfig(kind="folder2d", path=str(root), classes=3))


def test_msd_and_nnunet_layouts_are_checked(tmp_path: Path) -> None:
    (tmp_path / "msd").mkdir()
    (tmp_path / "msd" / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"0": "bg", "1": "a"},
                "training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}],
            }
        )
    )
    with pytest.raises(DataError, match=r"2 files listed in dataset.json are missing: .*x.nii.gz"):
        load_files(FilesConfig(kind="msd", path=str(tmp_path / "msd")))
    nn = tmp_path / "nnunet"
    (nn / "imagesTr").mkdir(parents=True)
    (nn / "labelsTr").mkdir()
    (nn / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T1", "1": "T2"},
                "labels": {"background": 0, "tumour": 1},
                "file_ending": ".nii.gz",
            }
        )
    )
    (nn / "labelsTr" / "case_001.nii.gz").write_bytes(b"")
    (nn / "imagesTr" / "case_001_0000.nii.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"1 channel files are missing in .*: case_001_0001.nii.gz"):
        load_files(FilesConfig(kind="nnunet", path=str(nn)))


def test_nnunet_volumes_with_two_channels_are_stacked_and_padded(tmp_path: Path) -> None:
    import nibabel as nib

    nn = tmp_path / "nnunet"
    (nn / "imagesTr").mkdir(parents=True)
    (nn / "labelsTr").mkdir()
    (nn / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T1", "1": "T2"},
                "labels": {"background": 0, "tumour": 1},
                "file_ending": ".nii.gz",
            }
        )
    )
    rng = np.random.default_rng(0)
    for i, shape in enumerate(((10, 12, 9), (14, 11, 8), (9, 9, 9))):
        for c in range(2):
            nib.save(
                nib.Nifti1Image(rng.random(shape).astype(np.float32), np.eye(4)),
                nn / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz",
            )
        label = np.zeros(shape, dtype=np.uint8)
        label[2:5, 2:5, 2:5] = 1
        nib.save(nib.Nifti1Image(label, np.eye(4)), nn / "labelsTr" / f"case_{i:03d}.nii.gz")
    data = load_files(FilesConfig(kind="nnunet", path=str(nn), val_fraction=0.34, pad_multiple=8))
    assert data.num_classes == 2 and data.class_names == ("background", "tumour")
    assert data.train_images[0].shape == (2, 16, 16, 16)  # padded to a common multiple of 8
    assert data.val_masks is not None and int(data.val_masks[0].sum()) < 16**3  # the padding lies outside the FOV


# ---------------------------------------------------------------- the shared real datasets


@pytest.mark.skipif(not (SHARED_DATA / "drive").is_dir(), reason="../shared/data/drive is not present")
def test_drive_keeps_its_own_test_set_with_fields_of_view() -> None:
    splits = index_drive(SHARED_DATA / "drive")
    assert len(splits["training"]) == 20 and len(splits["test"]) == 20
    assert all(c.fov is not None for c in splits["test"])
    data = load_files(FilesConfig(kind="drive", path=str(SHARED_DATA / "drive"), channels="green", patch=64, limit=6))
    assert len(data.train_images) + len(data.val_images) == 6 and len(data.test_images) == 6
    assert data.val_masks is not None and data.test_masks is not None
    fov = data.test_masks[0]
    assert 0.5 < float(fov.float().mean()) < 0.9  # the round field of view, not the whole frame
    assert data.input_shape == (1, 64, 64)


def test_clahe_raises_local_contrast_in_a_dark_region(tmp_path: Path) -> None:
    """A faint texture on a dark half beside a bright half (a fundus periphery beside the optic disc):
    a global rescaling leaves the texture at its share of the range; CLAHE stretches it locally."""
    texture = np.random.default_rng(0).normal(0, 1, (64, 64))
    image = (np.where(np.arange(64)[None, :] < 32, 0.1, 0.9) + 0.01 * texture).astype(np.float32)
    out = clahe(image[None])[0]
    assert out.shape == (64, 64) and out.min() >= 0 and out.max() <= 1
    before = image[8:56, 4:28].std() / (image.max() - image.min())
    after = out[8:56, 4:28].std() / (out.max() - out.min())
    assert after > 2 * before
    root = make_folder(tmp_path)
    plain = load_files(FilesConfig(kind="folder2d", path=str(root), channels="gray"))
    equalised = load_files(FilesConfig(kind="folder2d", path=str(root), channels="gray", clahe=True))
    assert not torch.allclose(plain.train_images[0], equalised.train_images[0])
    inside = equalised.train_images[0][:, :40]  # 40×48 images, padded to 48×48
    assert abs(float(inside.std()) - 1) < 1e-2  # still normalised after equalisation


def test_clahe_is_refused_for_volumes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.clahe: CLAHE applies to 2D images"):
        FilesConfig(kind="msd", path=str(tmp_path), clahe=True)


def test_msd_download_goes_through_monai_once_and_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network here: MONAI's DecathlonDataset is replaced by one that unpacks a tiny task the way the
    real one does (``root_dir/task/dataset.json`` + imagesTr/labelsTr); what is ours is the glue."""
    import monai.apps
    import nibabel as nib

    calls: list[dict] = []

    class FakeDecathlon:
        def __init__(self, **kwargs: object) -> None:
            calls.append(kwargs)
            task = Path(str(kwargs["root_dir"])) / str(kwargs["task"])
            (task / "imagesTr").mkdir(parents=True)
            (task / "labelsTr").mkdir()
            training = []
            for i in range(4):
                label = np.zeros((16, 16, 16), dtype=np.uint8)
                label[4:9, 4:9, 4:9] = 1
                image = np.random.default_rng(i).random((16, 16, 16)).astype(np.float32)
                nib.save(nib.Nifti1Image(image, np.eye(4)), task / f"imagesTr/c{i}.nii.gz")
                nib.save(nib.Nifti1Image(label, np.eye(4)), task / f"labelsTr/c{i}.nii.gz")
                training.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
            (task / "dataset.json").write_text(json.dumps({"labels": {"0": "bg", "1": "a"}, "training": training}))

    monkeypatch.setattr(monai.apps, "DecathlonDataset", FakeDecathlon)
    target = tmp_path / "data" / "Task04_Hippocampus"
    config = FilesConfig(kind="msd", path=str(target), download=True, val_fraction=0.25)
    data = load_files(config)
    assert len(data.train_images) == 3 and data.num_classes == 2
    expected = {"root_dir": target.parent, "task": target.name, "section": "training", "download": True}
    assert calls == [{**expected, "cache_rate": 0.0}]
    load_files(config)  # already there: no second download
    assert len(calls) == 1

    def failing(**kwargs: object) -> None:
        raise RuntimeError("network is unreachable")

    monkeypatch.setattr(monai.apps, "DecathlonDataset", failing)
    with pytest.raises(DataError, match=r"data\.download: fetching Task09_Spleen into .* \(RuntimeError: network"):
        load_files(FilesConfig(kind="msd", path=str(tmp_path / "Task09_Spleen"), download=True))
    with pytest.raises(DataError, match=r"data\.download: the folder name 'spleen' must be the MSD task"):
        FilesConfig(kind="msd", path=str(tmp_path / "spleen"), download=True)
    with pytest.raises(DataError, match=r"data\.download: only kind 'msd'"):
        FilesConfig(kind="drive", path=str(tmp_path / "Task09_Spleen"), download=True)


def test_nnunet_2d_png_reads_every_channel_file_as_nnunet_does(tmp_path: Path) -> None:
    """A 2D nnU-Net dataset: an RGB ``CASE_0000.png`` is channels 0-2, a gray ``CASE_0003.png`` the
    fourth; labels are class indices (no thresholding), and the size is padded to the stride."""
    rng = np.random.default_rng(0)
    nn = tmp_path / "Dataset900_Png"
    for i in range(4):
        write_png(nn / "imagesTr" / f"c{i}_0000.png", rng.integers(0, 255, (40, 48, 3)))
        write_png(nn / "imagesTr" / f"c{i}_0003.png", rng.integers(0, 255, (40, 48)))
        label = np.zeros((40, 48))
        label[4:20, 4:20], label[24:36, 30:44] = 1, 2
        write_png(nn / "labelsTr" / f"c{i}.png", label)
    meta = {"channel_names": {"0": "R", "1": "G", "2": "B", "3": "IR"}, "labels": {"bg": 0, "a": 1, "b": 2}}
    (nn / "dataset.json").write_text(json.dumps({**meta, "file_ending": ".png"}))
    data = load_files(FilesConfig(kind="nnunet", path=str(nn), val_fraction=0.25))
    assert data.input_shape == (4, 48, 48) and data.num_classes == 3 and data.spatial_dims == 2
    assert set(data.train_labels[0].unique().tolist()) == {0, 1, 2}
    assert data.class_names == ("bg", "a", "b")
    (nn / "dataset.json").write_text(json.dumps({**meta, "channel_names": {"0": "R"}, "file_ending": ".png"}))
    with pytest.raises(DataError, match=r"has 3 channels in c\d_0000.png, but .* names 1 \(channel_names\)"):
        load_files(FilesConfig(kind="nnunet", path=str(nn)))


def test_whole_images_of_several_sizes_and_patches_too_large_are_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path, n=4)
    write_png(root / "images" / "case09.png", np.zeros((64, 64, 3)))
    write_png(root / "masks" / "case09.png", np.zeros((64, 64)))
    with pytest.raises(DataError, match=r"data.size: the images have 2 different sizes: 40×48 \(4 images"):
        load_files(FilesConfig(kind="folder2d", path=str(root)))
    assert load_files(FilesConfig(kind="folder2d", path=str(root), size=32)).input_shape == (3, 32, 32)
    assert load_files(FilesConfig(kind="folder2d", path=str(root), patch=32)).input_shape == (3, 32, 32)
    with pytest.raises(DataError, match=r"data.patch: 48 is larger than 4 images or volumes: case00.png \(40×48\)"):
        load_files(FilesConfig(kind="folder2d", path=str(root), patch=48))
