"""nas train / nas retrain: one architecture at a time, with test-set metrics and transfer learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas._fit import fit_architecture, load_initial_weights
from nas.cli import main
from search_spaces import ArchSpec, AttentionSpec, build_model
from studies import open_storage
from tests._studyfactory import make_study
from trainers import SyntheticConfig, TrainConfig

TINY = {"kind": "synthetic", "n_train": 16, "n_val": 8, "n_test": 8, "size": 32}


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_nas_train_shows_progress_and_writes_weights_and_test_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ArchSpec(channels=(8, 16), attention=AttentionSpec("pwa", (), (("skip", (0,)),)))
    arch = write(tmp_path / "arch.json", spec.to_dict())
    data = write(tmp_path / "data.json", TINY)
    out = tmp_path / "out"
    assert main(["train", str(arch), "--data", str(data), "--epochs", "2", "-o", str(out), "--loss", "focal"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/2: loss" in printed and "epoch 2/2: loss" in printed and "test (8 images): dice" in printed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["spec_hash"] == spec.spec_hash() and saved["train"]["loss"] == "focal"
    assert saved["validation"]["mean"]["dice"] == pytest.approx(max(h["val_dice"] for h in saved["history"]))
    assert set(saved["test"]["mean"]) >= {"dice", "iou", "hd95"} and saved["test"]["images"] == 8
    model = build_model(ArchSpec.from_json((out / "arch.json").read_text()))
    model.load_state_dict(torch.load(out / "model.pt"))


def test_nas_retrain_uses_the_study_data_and_a_held_out_test_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    make_study(open_storage(storage, create=True), "s", weights_dir=tmp_path)
    export = tmp_path / "export"
    assert main(["export", "s", "--trial", "1", "--storage", storage, "-o", str(export)]) == 0
    assert main(["retrain", str(export), "--epochs", "1", "--batch-size", "16"]) == 0
    printed = capsys.readouterr().out
    assert "retraining sa(dot)@skip[0] unet 8-16-32 for 1 epochs on synthetic data" in printed
    assert "test (32 images): dice" in printed
    saved = json.loads((export / "retrained" / "metrics.json").read_text())
    assert saved["data"]["n_test"] == 32 and saved["test"] is not None


def test_initial_weights_are_matched_by_name_and_shape_and_can_be_frozen(tmp_path: Path) -> None:
    plain = build_model(ArchSpec(channels=(8, 16)))
    weights = tmp_path / "pretrained.pt"
    torch.save({"state_dict": plain.state_dict(), "epoch": 3}, weights)  # a training checkpoint
    spec = ArchSpec(channels=(8, 16), attention=AttentionSpec("se", (), (("skip", (0,)),)))
    model = build_model(spec)
    report = load_initial_weights(model, weights)
    assert report.loaded and all(not name.startswith("skip_attention") for name in report.loaded)
    assert any(name.startswith("skip_attention") for name in report.not_in_file) and not report.not_in_model
    assert all(torch.equal(model.state_dict()[n], plain.state_dict()[n]) for n in report.loaded)
    encoder_only = load_initial_weights(build_model(spec), weights, prefix="encoder.")
    assert encoder_only.loaded and all(n.startswith("encoder.") for n in encoder_only.loaded)
    wider = build_model(ArchSpec(channels=(16, 16)))
    assert load_initial_weights(wider, weights).shape_mismatch  # same names, other shapes: kept fresh

    data = SyntheticConfig(n_train=8, n_val=4, size=32)
    frozen = fit_architecture(spec, data, TrainConfig(epochs=2), tmp_path / "f", init=weights, freeze_epochs=2)
    state = frozen.result.best_state
    assert all(torch.equal(state[n], plain.state_dict()[n]) for n in report.loaded if "running" not in n)
    free = fit_architecture(spec, data, TrainConfig(epochs=2), tmp_path / "g", init=weights)
    assert any(not torch.equal(free.result.best_state[n], plain.state_dict()[n]) for n in report.loaded)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--init", "garbage.pt"], "--init: garbage.pt is not a readable PyTorch state dict"),
        (["--init", "missing.pt"], "--init: missing.pt does not exist"),
        (["--data", "wide.json"], "spec.in_channels: 1 does not fit the data, which needs 3"),
    ],
)
def test_bad_training_input_is_one_line(
    extra: list[str], message: str, in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(in_tmp_cwd / "arch.json", ArchSpec(channels=(8, 16)).to_dict())
    (in_tmp_cwd / "garbage.pt").write_bytes(b"not a tensor file")
    from tests.test_sources import make_folder

    make_folder(in_tmp_cwd / "rgb", n=4, size=(32, 32))
    write(in_tmp_cwd / "wide.json", {"kind": "folder2d", "path": "rgb"})
    code = main(["train", "arch.json", "--epochs", "1", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (in_tmp_cwd / "trained").exists()  # nothing trained, nothing written


def test_nas_retrain_trains_with_the_study_recipe_unless_told_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    study = make_study(open_storage(storage, create=True), "s", weights_dir=tmp_path)
    recipe = {"loss": "focal", "optimizer": "sgd", "lr": 0.0123, "schedule": "poly", "batch_size": 4, "epochs": 3}
    study.set_user_attr("train", {**recipe, "threads_per_trial": 1, "some_future_field": 1})
    export = tmp_path / "export"
    assert main(["export", "s", "--trial", "1", "--storage", storage, "-o", str(export)]) == 0
    assert main(["retrain", str(export), "--epochs", "1", "-o", str(tmp_path / "a")]) == 0
    assert "the study recipe: loss focal, sgd lr 0.0123, poly schedule, batch 4" in capsys.readouterr().out
    used = json.loads((tmp_path / "a" / "metrics.json").read_text())["train"]
    assert {k: used[k] for k in ("loss", "optimizer", "lr", "schedule", "batch_size")} == {
        k: v for k, v in recipe.items() if k != "epochs"
    }
    assert used["epochs"] == 1  # retrain's own budget, not the search's
    given = ["--epochs", "1", "--lr", "0.002", "--loss", "dice_ce", "--wall-time", "1h", "-o", str(tmp_path / "b")]
    assert main(["retrain", str(export), *given]) == 0
    used = json.loads((tmp_path / "b" / "metrics.json").read_text())["train"]
    assert (used["lr"], used["loss"], used["optimizer"], used["time_budget_s"]) == (0.002, "dice_ce", "sgd", 3600.0)


def test_a_bad_wall_time_is_one_line(in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(in_tmp_cwd / "arch.json", ArchSpec(channels=(8, 16)).to_dict())
    code = main(["train", "arch.json", "--wall-time", "soon"])
    err = capsys.readouterr().err
    assert code == 2 and "--wall-time: 'soon' is not valid" in err and len(err.strip().splitlines()) == 1
    assert not (in_tmp_cwd / "trained").exists()
