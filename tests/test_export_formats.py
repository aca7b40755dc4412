"""The deployment formats of an export: ``torch.export`` (``model.pt2``) and ONNX (``model.onnx``),
each checked against the eager network; every registered block exports to both (registry-driven,
2D and 3D, tiny networks), and the reproducibility manifest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import onnxruntime
import pytest
import torch
from torch import nn

from search_spaces import ArchSpec, AttentionSpec, block_info, block_names, build_model
from studies import create_study, export_trial, open_storage, write_onnx, write_program
from tests._studyfactory import add_trial, make_study

SHAPES = {2: [1, 32, 32], 3: [1, 16, 16, 16]}
#: Options for blocks whose defaults are not a network on their own (a composition of two primitives).
OPTIONS = {"compose": (("a", "pwa"), ("b", "sa"))}
#: Four levels: ten sites (bottleneck, and encoder, decoder and skip at levels 0-2) per network.
CHANNELS = (4, 8, 8, 8)


def _placements(name: str) -> tuple[str, ...]:
    if name == "compose":
        return ("skip",)
    info = block_info(name)
    return info.placements_for({**info.defaults(), **dict(OPTIONS.get(name, ()))})


def networks_holding_every_block(dims: int) -> list[tuple[list[str], ArchSpec]]:
    """Every registered block (but ``none``) at one site of a few networks: an export per network,
    not per block, keeps the check to seconds. Gating blocks take the skip sites first."""
    names = sorted((n for n in block_names() if n != "none"), key=lambda n: (_placements(n) != ("skip",), n))
    depth = len(CHANNELS)
    out = []
    while names:
        free = [("bottleneck", depth - 1)] + [
            (p, lvl) for p in ("encoder", "decoder", "skip") for lvl in range(depth - 1)
        ]
        held, mechanisms, left = [], [], []
        for name in names:
            site = next((s for s in free if s[0] in _placements(name)), None)
            if site is None:
                left.append(name)
                continue
            free.remove(site)
            held.append(name)
            mechanisms.append(AttentionSpec(name, OPTIONS.get(name, ()), ((site[0], (site[1],)),)))
        spec = ArchSpec(
            spatial_dims=dims, channels=CHANNELS, attention=mechanisms[0], extra_attention=tuple(mechanisms[1:])
        )
        out.append((held, spec))
        names = left
    return out


def spec_holding(name: str, dims: int) -> ArchSpec:
    placement = _placements(name)[0]
    attention = AttentionSpec(name, OPTIONS.get(name, ()), ((placement, (1 if placement == "bottleneck" else 0,)),))
    return ArchSpec(spatial_dims=dims, channels=(4, 8), attention=attention)


def onnx_output(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def test_the_networks_hold_every_registered_block() -> None:
    for dims in (2, 3):
        held = [name for names, _ in networks_holding_every_block(dims) for name in names]
        assert sorted(held) == sorted(n for n in block_names() if n != "none")


@pytest.mark.parametrize("group", range(len(networks_holding_every_block(2))))
# 3D exports take minutes on 2 cores (Swin and axial attention make large programs): CI's slow run.
@pytest.mark.parametrize("dims", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_every_registered_block_exports_to_torch_export_and_onnx(dims: int, group: int, tmp_path: Path) -> None:
    names, spec = networks_holding_every_block(dims)[group]
    torch.manual_seed(0)
    model = build_model(spec).eval()
    with torch.no_grad():  # zero-initialised scales (PAM's γ, ...) would hide a branch the export lost
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    shape = SHAPES[dims]
    cache: dict = {}
    program = write_program(model, shape, tmp_path / "model.pt2", cache=cache)
    onnx = write_onnx(model, shape, tmp_path / "model.onnx", cache=cache)
    assert program.file == "model.pt2", f"{names}: {program.reason}"
    assert onnx.file == "model.onnx", f"{names}: {onnx.reason}"
    assert "batch" in program.dynamic and "batch" in onnx.dynamic
    # An independent check at a batch size neither export was checked at, from the files on disk.
    x = torch.randn(5, *shape)
    with torch.no_grad():
        want = model(x)
        from_program = torch.export.load(str(tmp_path / "model.pt2")).module()(x)
    from_onnx = onnx_output(tmp_path / "model.onnx", x)
    tolerance = 1e-4 + 1e-4 * float(want.abs().max())
    assert float((from_program - want).abs().max()) <= tolerance, names
    assert float((from_onnx - want).abs().max()) <= tolerance, names
    assert onnx.max_abs_diff is not None and onnx.max_abs_diff <= tolerance


def test_the_export_writes_both_formats_records_their_checks_and_they_run_at_other_sizes(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    out = export_trial(make_study(storage, "fmt", weights_dir=tmp_path), 1, tmp_path / "export")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["torch_export"]["file"] == "model.pt2" and metrics["onnx"]["file"] == "model.onnx"
    assert metrics["onnx"]["opset"] == 23 and metrics["onnx"]["max_abs_diff"] < 1e-4
    assert metrics["torch_export"]["dynamic"] == ["batch", "spatial (multiples of 4)"]
    model = build_model(ArchSpec.from_json((out / "arch.json").read_text()))
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu"))
    model.eval()
    x = torch.randn(3, 1, 96, 48)  # another batch and spatial size than the study's 64 × 64
    with torch.no_grad():
        want = model(x)
        got = torch.export.load(str(out / "model.pt2")).module()(x)
    assert (got - want).abs().max() < 1e-4
    assert (onnx_output(out / "model.onnx", x) - want).abs().max() < 1e-4
    card = (out / "MODEL_CARD.md").read_text()
    assert "torch.export.load" in card and "onnxruntime.InferenceSession" in card


class _Drifting(nn.Module):
    """A network whose output depends on Python state the exporters freeze: a program of it is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) * self.calls


def test_a_program_that_differs_from_the_network_is_not_written(tmp_path: Path) -> None:
    program = write_program(_Drifting(), [1, 16, 16], tmp_path / "model.pt2")
    onnx = write_onnx(_Drifting(), [1, 16, 16], tmp_path / "model.onnx")
    assert program.file is None and "differs from the network's" in (program.reason or "")
    assert onnx.file is None and "differs from the network's" in (onnx.reason or "")
    assert not (tmp_path / "model.pt2").exists() and not (tmp_path / "model.onnx").exists()


class _Windowed(nn.Module):
    """Python arithmetic on the input's size (as Swin windows do): torch.export traces it symbolically
    but cannot serialise the program, so the dynamic-spatial export is refused and batch-only kept."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * math.ceil(x.shape[2] / 4)


def test_a_size_the_program_cannot_vary_falls_back_to_a_dynamic_batch(tmp_path: Path) -> None:
    model = _Windowed().eval()
    program = write_program(model, [1, 16, 16], tmp_path / "model.pt2")
    assert program.file == "model.pt2" and program.dynamic == ["batch"]
    assert program.checked_shapes == [[2, 1, 16, 16], [3, 1, 16, 16]]
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(torch.export.load(str(tmp_path / "model.pt2")).module()(x), model(x), atol=1e-5)


def test_every_export_holds_a_reproducibility_manifest(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    split = {"train": ["a", "b"], "val": ["c"], "test": []}
    attrs = {"data": {"kind": "folder2d", "path": "/d", "seed": 3}, "train": {"device": "cpu", "seed": 5}}
    study = create_study(storage, "man", attrs={**attrs, "input_shape": [1, 32, 32], "seed": 7, "split": split})
    spec = ArchSpec(channels=(4, 8))
    add_trial(study, spec, (0.5, 0.01), weights_dir=tmp_path)
    out = export_trial(study, 0, tmp_path / "export")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec_hash"] == spec.spec_hash()
    assert manifest["split"] == split
    assert manifest["seeds"] == {"search": 7, "data": 3, "train": 5, "trial": None}
    assert manifest["command"]["recorded"] is False  # the study recorded none, and the manifest says so
    env = manifest["export_environment"]
    assert (
        env["libraries"]["torch"] == torch.__version__.split("+")[0] or env["libraries"]["torch"] == torch.__version__
    )
    assert {"onnxruntime", "monai", "numpy", "optuna"} <= set(env["libraries"])
    assert isinstance(env["deterministic_algorithms"], bool) and "cudnn_benchmark" in env
    assert manifest["device"]["trained_on"] == "cpu"
