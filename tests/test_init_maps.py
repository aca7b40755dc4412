"""Transfer learning from public checkpoints: torchvision's ResNet names onto the resnet34 encoder,
through ``nas train --init`` and a study file's ``train.init``.

The checkpoints are written here, by hand, with torchvision's key names and shapes (torchvision is
not imported, nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas._fit import INIT_MAPS, NameMap, init_map_choices, load_initial_weights, register_init_map
from nas.cli import main
from search_spaces import ArchSpec, build_model
from studies import load_study, open_storage

TORCHVISION_RESNET34_PARAMS = 21_797_672


def _bn(state: dict[str, torch.Tensor], name: str, width: int, gen: torch.Generator) -> None:
    state[f"{name}.weight"] = 1 + 0.1 * torch.randn(width, generator=gen)
    state[f"{name}.bias"] = 0.1 * torch.randn(width, generator=gen)
    state[f"{name}.running_mean"] = 0.1 * torch.randn(width, generator=gen)
    state[f"{name}.running_var"] = 1 + torch.rand(width, generator=gen)
    state[f"{name}.num_batches_tracked"] = torch.tensor(1000)


def torchvision_resnet34(width: int = 64, in_channels: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict under torchvision ``resnet34()``'s names and shapes (``width=64``), random values."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {"conv1.weight": torch.randn(width, in_channels, 7, 7, generator=gen)}
    _bn(state, "bn1", width, gen)
    previous = width
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        out = width * 2 ** (stage - 1)
        for index in range(blocks):
            name = f"layer{stage}.{index}"
            first_in = previous if index == 0 else out
            state[f"{name}.conv1.weight"] = torch.randn(out, first_in, 3, 3, generator=gen)
            _bn(state, f"{name}.bn1", out, gen)
            state[f"{name}.conv2.weight"] = torch.randn(out, out, 3, 3, generator=gen)
            _bn(state, f"{name}.bn2", out, gen)
            if index == 0 and stage > 1:
                state[f"{name}.downsample.0.weight"] = torch.randn(out, first_in, 1, 1, generator=gen)
                _bn(state, f"{name}.downsample.1", out, gen)
        previous = out
    state["fc.weight"] = torch.randn(1000, previous, generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state


def resnet_spec(width: int = 64, depth: int = 5, **kwargs: object) -> ArchSpec:
    widths = tuple(width * 2 ** max(0, level - 1) for level in range(depth))
    return ArchSpec(backbone="resnet34", channels=widths, norm="batch", **kwargs)  # type: ignore[arg-type]


def test_the_hand_written_checkpoint_has_torchvisions_size() -> None:
    state = torchvision_resnet34()
    learned = sum(
        t.numel()
        for name, t in state.items()
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert learned == TORCHVISION_RESNET34_PARAMS


def test_nas_train_maps_torchvision_names_and_sums_the_stem_into_one_channel(
    in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = torchvision_resnet34()
    torch.save(state, in_tmp_cwd / "resnet34.pth")
    (in_tmp_cwd / "arch.json").write_text(resnet_spec().to_json())
    (in_tmp_cwd / "data.json").write_text(
        json.dumps({"kind": "synthetic", "n_train": 16, "n_val": 8, "n_test": 8, "size": 64})
    )
    args = ["train", "arch.json", "--data", "data.json", "--epochs", "1", "--init", "resnet34.pth", "-o", "out"]
    # Frozen for the one epoch: what was copied is still there to compare in the saved weights.
    assert main([*args, "--init-map", "torchvision-resnet", "--freeze-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    encoder_tensors = len(state) - 2  # everything but fc.weight and fc.bias
    assert f"initialised {encoder_tensors} tensors from resnet34.pth (name map torchvision-resnet)" in printed
    assert "1 adapted: encoder.0.conv1.weight: 3 input channels summed into 1" in printed
    assert "2 dropped by the name map: fc.bias, fc.weight" in printed and "not the model" not in printed
    saved = torch.load(in_tmp_cwd / "out" / "model.pt")
    assert torch.equal(saved["encoder.0.conv1.weight"], state["conv1.weight"].sum(dim=1, keepdim=True))
    for theirs, ours in (
        ("layer1.0.conv1.weight", "encoder.1.blocks.0.conv1.weight"),
        ("layer3.5.conv2.weight", "encoder.3.blocks.5.conv2.weight"),
        ("layer2.0.downsample.0.weight", "encoder.2.blocks.0.downsample.0.weight"),
        ("layer4.2.bn2.weight", "encoder.4.blocks.2.bn2.weight"),
        ("bn1.bias", "encoder.0.bn1.bias"),
    ):
        assert torch.equal(saved[ours], state[theirs]), ours
    recorded = json.loads((in_tmp_cwd / "out" / "metrics.json").read_text())["init"]
    assert recorded["name_map"] == "torchvision-resnet" and len(recorded["loaded"]) == encoder_tensors
    assert recorded["adapted"] == ["encoder.0.conv1.weight: 3 input channels summed into 1"]


def test_without_the_map_nothing_matches_and_training_is_refused(
    in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(torchvision_resnet34(width=8), in_tmp_cwd / "small.pth")
    (in_tmp_cwd / "arch.json").write_text(resnet_spec(8).to_json())
    code = main(["train", "arch.json", "--epochs", "1", "--init", "small.pth", "--init-map", "none"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--init: nothing in small.pth matches the model by name and shape" in err
    assert not (in_tmp_cwd / "trained").exists()


def test_auto_recognises_torchvision_keys_and_other_channel_counts_follow_timms_rule(tmp_path: Path) -> None:
    state = torchvision_resnet34(width=8)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pth")
    rgb = build_model(resnet_spec(8, in_channels=3))
    report = load_initial_weights(rgb, tmp_path / "wrapped.pth")  # auto; DataParallel's prefix stripped
    assert report.name_map == "torchvision-resnet" and not report.adapted and not report.shape_mismatch
    assert torch.equal(rgb.state_dict()["encoder.0.conv1.weight"], state["conv1.weight"])
    two = build_model(resnet_spec(8, in_channels=2))
    report = load_initial_weights(two, tmp_path / "wrapped.pth")
    assert report.adapted == ("encoder.0.conv1.weight: 3 input channels repeated to 2, scaled by 3/2",)
    assert torch.allclose(two.state_dict()["encoder.0.conv1.weight"], state["conv1.weight"][:, :2] * 1.5)
    shallow = build_model(resnet_spec(8, depth=4))
    report = load_initial_weights(shallow, tmp_path / "wrapped.pth")
    assert report.not_in_model and all(name.startswith("encoder.4.") for name in report.not_in_model)


def test_2d_imagenet_kernels_inflate_into_a_3d_encoder(tmp_path: Path) -> None:
    state = torchvision_resnet34(width=8)
    torch.save(state, tmp_path / "tv.pth")
    model = build_model(resnet_spec(8, spatial_dims=3))
    report = load_initial_weights(model, tmp_path / "tv.pth")
    assert "encoder.0.conv1.weight: 3 input channels summed into 1, 2D kernel inflated to depth 7" in report.adapted
    stem = model.state_dict()["encoder.0.conv1.weight"]
    assert stem.shape == (8, 1, 7, 7, 7)
    for d in range(7):
        assert torch.allclose(stem[:, :, d], state["conv1.weight"].sum(dim=1, keepdim=True) / 7)
    assert torch.allclose(
        model.state_dict()["encoder.3.blocks.1.conv1.weight"].sum(dim=2), state["layer3.1.conv1.weight"]
    )


def test_name_maps_are_a_registry() -> None:
    assert "torchvision-resnet" in init_map_choices() and init_map_choices()[:2] == ("auto", "none")
    with pytest.raises(ValueError, match="already registered"):
        register_init_map(NameMap("torchvision-resnet", "", lambda k: k, lambda keys: False))
    assert INIT_MAPS["torchvision-resnet"].rename("fc.weight") is None


def _study_file(folder: Path, space: str, init: str = "tv.pth") -> Path:
    path = folder / "study.yaml"
    path.write_text(
        f"""
name: warm
storage: sqlite:///{folder / "nas.db"}
data: {{kind: synthetic, size: 32, n_train: 8, n_val: 4}}
space: {space}
budget: {{trials: 1}}
fidelity: {{epochs: 1}}
concurrency: 1
baselines: false
train: {{init: {init}, init_map: torchvision-resnet, batch_size: 4}}
out_dir: {folder / "runs"}
"""
    )
    return path


RESNET_SPACE = "{blocks: [none], backbones: [resnet34], depths: [4], base_widths: [8], norm: batch}"


def test_a_search_starts_every_trial_from_train_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    torch.save(torchvision_resnet34(width=8), folder / "tv.pth")
    assert main(["search", str(_study_file(folder, RESNET_SPACE))]) == 0
    assert "every trial starts from" in capsys.readouterr().out
    study = load_study(open_storage(f"sqlite:///{folder / 'nas.db'}", create=False), "warm")
    recorded = study.user_attrs["init"]
    assert recorded["path"] == str((folder / "tv.pth").resolve()) and recorded["resolved_map"] == "torchvision-resnet"
    # A 4-level resnet34 has the stem and layer1-3: everything of torchvision's but layer4 and fc.
    expected = sum(1 for k in torchvision_resnet34(width=8) if not k.startswith(("layer4.", "fc.")))
    assert recorded["loaded_tensors"] == {"resnet34/8": expected}
    [trial] = study.trials
    assert trial.state.name == "COMPLETE"
    applied = json.loads((folder / "runs" / "warm" / "trials" / f"{trial.number:05d}" / "init.json").read_text())
    assert applied["name_map"] == "torchvision-resnet" and len(applied["loaded"]) == expected


@pytest.mark.parametrize(
    ("space", "init", "message"),
    [
        (RESNET_SPACE, "missing.pth", "train.init: {folder}/missing.pth does not exist"),
        ("{blocks: [none], backbones: [unet], depths: [3], base_widths: [8]}", "tv.pth", "matches any backbone"),
    ],
)
def test_weights_that_are_missing_or_fit_nothing_are_refused_before_the_study_exists(
    space: str, init: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(torchvision_resnet34(width=8), tmp_path / "tv.pth")
    assert main(["search", str(_study_file(tmp_path, space, init))]) == 2
    err = capsys.readouterr().err
    assert message.format(folder=tmp_path.resolve()) in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "nas.db").exists()


def test_the_init_flag_of_nas_search_is_taken_from_the_working_directory(
    in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = in_tmp_cwd / "elsewhere"
    folder.mkdir()
    study = _study_file(folder, RESNET_SPACE, "tv.pth")  # the file's own train.init does not exist there
    assert main(["search", str(study), "--init", "here.pth", "--init-map", "auto"]) == 2
    err = capsys.readouterr().err
    assert f"train.init: {in_tmp_cwd.resolve() / 'here.pth'} does not exist" in err, err
    assert not (folder / "nas.db").exists()
