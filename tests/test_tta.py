"""Test-time augmentation by flips (AF-Net): the prediction against hand-written references, its
symmetry, and the option from the config, the CLI and a study file to the exported bundle."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer, sliding_window_inference
from torch import nn

from nas import ConfigError, search_config
from nas.cli import main
from search_spaces import ArchSpec, build_model
from studies import create_study, export_trial, open_storage
from tests._studyfactory import add_trial
from trainers import (
    DataError,
    FlipInferer,
    SyntheticConfig,
    TrainConfig,
    evaluate,
    evaluate_metrics,
    flip_axes,
    make_synthetic,
    predict,
    train,
)

TINY = {"kind": "synthetic", "n_train": 8, "n_val": 4, "n_test": 4, "size": 32}

#: Every flip of two axes, written out: identity, horizontal (W), vertical (H), diagonal (both).
FLIPS_2D = [(), (-1,), (-2,), (-2, -1)]
#: ... and of three: identity, each axis, each pair, all three.
FLIPS_3D = [(), (-1,), (-2,), (-3,), (-2, -1), (-3, -1), (-3, -2), (-3, -2, -1)]


class Skewed(nn.Module):
    """Not flip-equivariant: a random 3×3(×3) convolution plus a ramp along every spatial axis."""

    def __init__(self, spatial_dims: int, out_channels: int = 3) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.conv = conv(1, out_channels, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        for axis in range(2, x.ndim):
            shape = [1] * x.ndim
            shape[axis] = x.shape[axis]
            out = out + torch.linspace(-1.5, 1.5, x.shape[axis]).reshape(shape) * (axis - 1)
        return out


def reference(
    model: nn.Module, image: torch.Tensor, flips: list[tuple[int, ...]], window: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Mean over ``flips`` of softmax (or sigmoid, as [1 - p, p]) of the flipped input's logits, flipped back."""
    total = torch.zeros(())
    with torch.no_grad():
        for axes in flips:
            x = image[None].flip(axes) if axes else image[None]
            logits = torch.as_tensor(
                model(x) if window is None else sliding_window_inference(x, window, 16, model, 0.25, "gaussian")
            )
            if logits.shape[1] == 1:
                p = torch.cat([1 - torch.sigmoid(logits), torch.sigmoid(logits)], dim=1)
            else:
                p = torch.softmax(logits, dim=1)
            total = total + (p.flip(axes) if axes else p)
    return (total / len(flips))[0]


def test_the_flips_are_afnets_in_2d_and_every_combination_in_3d() -> None:
    assert flip_axes(2) == [(), (2,), (3,), (2, 3)]
    assert flip_axes(3) == [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]


def test_flip_tta_is_the_mean_probability_over_the_flipped_forwards_2d() -> None:
    model = Skewed(2).eval()
    images = torch.randn(3, 1, 12, 16)
    plain = predict(model, images)
    tta = predict(model, images, tta="flips", batch_size=2)
    for image, p, q in zip(images, plain, tta, strict=True):
        assert torch.allclose(q, reference(model, image, FLIPS_2D), atol=1e-6)
        assert torch.allclose(p, reference(model, image, [()]), atol=1e-6)
        assert (q - p).abs().max() > 1e-2  # the network is not flip-equivariant: TTA changes the prediction
        assert torch.allclose(q.sum(dim=0), torch.ones(12, 16), atol=1e-5)


def test_flip_tta_with_a_sliding_window_in_3d() -> None:
    model = Skewed(3, out_channels=2).eval()
    images = [torch.randn(1, 12, 10, 14) for _ in range(2)]
    window = (8, 8, 8)
    tta = predict(model, images, tta="flips", window=window)
    for image, q in zip(images, tta, strict=True):
        assert torch.allclose(q, reference(model, image, FLIPS_3D, window), atol=1e-5)
        assert not torch.allclose(q, reference(model, image, [()], window), atol=1e-3)


def test_a_sigmoid_head_averages_probabilities_not_logits() -> None:
    model = Skewed(2, out_channels=1).eval()
    image = torch.randn(1, 10, 10)
    q = predict(model, image[None], tta="flips")[0]
    assert q.shape == (2, 10, 10)
    assert torch.allclose(q, reference(model, image, FLIPS_2D), atol=1e-6)
    with torch.no_grad():
        mean_logit = torch.stack([model(image[None].flip(a)).flip(a) for a in FLIPS_2D]).mean(0)[0, 0]
    assert (q[1] - torch.sigmoid(mean_logit)).abs().max() > 1e-3


def test_the_bundles_inferer_is_the_same_flip_average() -> None:
    model = Skewed(2, out_channels=1).eval()
    images = torch.randn(2, 1, 12, 16)
    window = SlidingWindowInferer((8, 8), sw_batch_size=16, overlap=0.25, mode="gaussian")
    with torch.no_grad():
        whole, windowed = FlipInferer()(images, model), FlipInferer(window)(images, model)
    for i, image in enumerate(images):
        assert torch.allclose(whole[i], reference(model, image, FLIPS_2D), atol=1e-6)
        assert torch.allclose(windowed[i], reference(model, image, FLIPS_2D, (8, 8)), atol=1e-5)


def test_tta_of_a_flip_symmetric_input_is_flip_symmetric() -> None:
    """Whatever the network, the flip average of an input equal to each of its flips is itself
    unchanged by every flip; the plain prediction of this network is not."""
    model = Skewed(2).eval()
    half = torch.randn(1, 6, 8)
    top = torch.cat([half, half.flip(-1)], dim=-1)
    image = torch.cat([top, top.flip(-2)], dim=-2)  # 12×16, symmetric under every flip
    for axes in FLIPS_2D[1:]:
        assert torch.equal(image.flip(axes), image)
    q = predict(model, image[None], tta="flips")[0]
    p = predict(model, image[None])[0]
    for axes in FLIPS_2D[1:]:
        assert torch.allclose(q.flip(axes), q, atol=1e-6)
        assert not torch.allclose(p.flip(axes), p, atol=1e-3)


def test_an_equivariant_network_is_unchanged_by_tta() -> None:
    model = nn.Conv3d(1, 3, 1).eval()  # pointwise: commutes with every flip
    images = torch.randn(2, 1, 6, 8, 10)
    for p, q in zip(predict(model, images), predict(model, images, tta="flips"), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_bad_tta_values_name_the_field_and_the_choices() -> None:
    with pytest.raises(DataError, match=r"^train\.tta: 'rotations' is not valid; expected one of none, flips$"):
        TrainConfig(tta="rotations")
    with pytest.raises(DataError, match=r"train\.tta: 'yes' is not valid"):
        predict(nn.Conv2d(1, 2, 1), torch.zeros(1, 1, 4, 4), tta="yes")


def test_training_validates_and_tests_with_tta() -> None:
    """The per-epoch Dice that picks the best weights, and the metrics of those weights, are of the
    flip-averaged prediction."""
    torch.set_num_threads(1)
    data = make_synthetic(SyntheticConfig(n_train=8, n_val=4, n_test=4, size=32, seed=0))
    model = build_model(ArchSpec(channels=(8, 16)))
    result = train(model, data, TrainConfig(epochs=2, batch_size=4, tta="flips"))
    assert result.metrics is not None and result.test_metrics is not None
    model.load_state_dict(result.best_state)
    assert result.best_dice == pytest.approx(
        evaluate(model, data.val_images, data.val_labels, num_classes=2, tta="flips"), abs=1e-6
    )
    for measured, images, labels in (
        (result.metrics, data.val_images, data.val_labels),
        (result.test_metrics, data.test_images, data.test_labels),
    ):
        flipped = evaluate_metrics(model, images, labels, tta="flips").mean
        plain = evaluate_metrics(model, images, labels).mean
        assert measured.mean["mae"] == pytest.approx(flipped["mae"], abs=1e-6)
        assert measured.mean["auc"] == pytest.approx(flipped["auc"], abs=1e-6)
        assert abs(measured.mean["mae"] - plain["mae"]) > 1e-5


# ---------------------------------------------------------------- CLI, study file, export


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_nas_train_and_retrain_take_tta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = write(tmp_path / "arch.json", ArchSpec(channels=(8, 16)).to_dict())
    data = write(tmp_path / "data.json", TINY)
    out = tmp_path / "out"
    assert main(["train", str(arch), "--data", str(data), "--epochs", "1", "--tta", "flips", "-o", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["train"]["tta"] == "flips"
    assert main(["train", str(arch), "--data", str(data), "--tta", "spin"]) == 2
    assert "--tta: invalid choice: 'spin'" in capsys.readouterr().err
    # nas retrain evaluates as the study did unless told otherwise
    export = tmp_path / "export"
    export.mkdir()
    (export / "arch.json").write_text(arch.read_text())
    write(export / "metrics.json", {"data": TINY, "train": {"tta": "flips"}})
    assert main(["retrain", str(export), "--epochs", "1", "--batch-size", "16"]) == 0
    assert json.loads((export / "retrained" / "metrics.json").read_text())["train"]["tta"] == "flips"


def test_a_study_file_sets_train_tta() -> None:
    assert search_config("demo").train.tta == "none"
    assert search_config("demo", [("train.tta", "flips")]).train.tta == "flips"
    with pytest.raises(ConfigError, match=r"train\.tta: 'spin' is not valid; expected one of none, flips"):
        search_config("demo", [("train.tta", "spin")])


def exported(tmp_path: Path, tta: str | None) -> Path:
    storage = open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    attrs: dict[str, object] = {"data": TINY, "input_shape": [1, 32, 32]}
    if tta is not None:
        attrs["train"] = dataclasses.asdict(TrainConfig(tta=tta))
    study = create_study(storage, "s", attrs=attrs)
    number = add_trial(study, ArchSpec(channels=(8, 16)), (0.5, 0.01), weights_dir=tmp_path)
    return export_trial(study, number, tmp_path / "export")


@pytest.mark.parametrize("tta", ["none", None])
def test_an_export_without_tta_says_so_and_its_bundle_runs_one_pass(tmp_path: Path, tta: str | None) -> None:
    out = exported(tmp_path, tta)
    assert json.loads((out / "metrics.json").read_text())["tta"] == "none"
    assert "test-time augmentation: none" in (out / "MODEL_CARD.md").read_text()
    inference = json.loads((out / "bundle" / "configs" / "inference.json").read_text())
    assert inference["inferer"]["_target_"] == "SlidingWindowInferer"


def test_an_export_with_tta_records_it_and_its_bundle_segments_with_the_flips(tmp_path: Path) -> None:
    import nibabel as nib
    from monai.bundle import ConfigParser
    from monai.transforms import NormalizeIntensity

    out = exported(tmp_path, "flips")
    assert json.loads((out / "metrics.json").read_text())["tta"] == "flips"
    assert "test-time augmentation: flips" in (out / "MODEL_CARD.md").read_text()
    bundle = out / "bundle"
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert "averaged over every combination of flipped spatial axes" in meta["pred_classes"]
    inference = json.loads((bundle / "configs" / "inference.json").read_text())
    assert inference["inferer"]["_target_"] == "trainers.FlipInferer"

    images, segmented = tmp_path / "images", tmp_path / "segmented"
    images.mkdir()
    rng = np.random.default_rng(0)
    volumes = [rng.normal(size=(32, 32)).astype(np.float32) for _ in range(2)]
    for i, volume in enumerate(volumes):
        nib.save(nib.Nifti1Image(volume, np.eye(4)), str(images / f"case{i}.nii.gz"))
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update({"bundle_root": str(bundle), "dataset_dir": str(images), "output_dir": str(segmented)})
    try:  # the bundle's own steps, in this process (its initialize switches gradients off)
        parser.get_parsed_content("initialize")
        parser.get_parsed_content("run")
    finally:
        torch.set_grad_enabled(True)

    model = build_model(ArchSpec(channels=(8, 16)))
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu"))
    model.eval()
    changed = 0
    for i, volume in enumerate(volumes):
        file: Any = nib.load(str(segmented / f"case{i}_seg.nii.gz"))
        saved = np.asarray(file.dataobj).squeeze()
        x = torch.from_numpy(np.array(NormalizeIntensity()(torch.from_numpy(volume)[None])))
        expected = reference(model, x, FLIPS_2D).argmax(0).numpy()
        plain = reference(model, x, [()]).argmax(0).numpy()
        assert saved.shape == expected.shape and (saved == expected).all()
        changed += int((plain != expected).sum())
    assert changed > 0  # the flips changed some pixels, so the bundle did apply them
