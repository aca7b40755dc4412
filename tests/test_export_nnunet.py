"""The nnU-Net v2 export: the trainer class ``nas export --nnunet`` writes, checked in isolation (fast)
and trained by nnU-Net itself in its own virtual environment (slow: nnunetv2 needs torchvision,
which does not import beside this project's torch, so ``scripts/ensure-nnunet-venv.sh`` builds and
caches a separate environment)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.cli import main
from search_spaces import ArchSpec, build_model
from studies import export_trial, open_storage
from tests._studyfactory import make_study

ROOT = Path(__file__).resolve().parent.parent
TRAINER = "nnUNetTrainer_nn_u_1"  # study "nn-u", trial 1 (SA at skip 0, channels 8-16-32)


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    storage = open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    study = make_study(storage, "nn-u", weights_dir=tmp_path)
    return export_trial(study, 1, tmp_path / "export", nnunet=True)


def test_the_nnunet_export_writes_a_trainer_its_spec_and_instructions(exported: Path) -> None:
    folder = exported / "nnunet"
    assert sorted(p.name for p in folder.iterdir()) == [f"{TRAINER}.json", f"{TRAINER}.py"]
    assert json.loads((folder / f"{TRAINER}.json").read_text()) == json.loads((exported / "arch.json").read_text())
    source = (folder / f"{TRAINER}.py").read_text()
    compile(source, TRAINER, "exec")  # valid Python, whatever the study's name
    assert f"class {TRAINER}(nnUNetTrainer)" in source
    card = (exported / "MODEL_CARD.md").read_text()
    assert "nnUNet_extTrainer" in card and f"nnUNetv2_train DATASET CONFIGURATION FOLD -tr {TRAINER}" in card
    assert json.loads((exported / "metrics.json").read_text())["nnunet"]["trainer"] == TRAINER
    # nnU-Net's environment has no Optuna or Ray: the trainer imports nnU-Net, torch and search_spaces only
    imported = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imported <= {"__future__", "json", "pathlib", "torch", "nnunetv2"}, imported
    assert "from search_spaces import" in source


def load_trainer_module(exported: Path) -> types.ModuleType:
    """The exported trainer's module, with a stand-in for nnU-Net's base class (not installed here)."""
    stub = {
        name: types.ModuleType(name)
        for name in (
            "nnunetv2",
            "nnunetv2.training",
            "nnunetv2.training.nnUNetTrainer",
            "nnunetv2.training.nnUNetTrainer.nnUNetTrainer",
        )
    }
    stub["nnunetv2.training.nnUNetTrainer.nnUNetTrainer"].nnUNetTrainer = type("nnUNetTrainer", (), {})  # type: ignore[attr-defined]
    path = exported / "nnunet" / f"{TRAINER}.py"
    spec = importlib.util.spec_from_file_location(TRAINER, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {name: sys.modules.get(name) for name in stub}
    sys.modules.update(stub)
    try:
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def test_the_trainer_maps_the_plans_patch_size_onto_the_stride_or_names_what_does_not_fit(exported: Path) -> None:
    trainer = load_trainer_module(exported)
    arch = json.loads((exported / "arch.json").read_text())  # 3 levels: stride 4
    assert trainer.fit_patch_size(arch, "'2d'", [50, 37]) == [48, 36]
    with pytest.raises(trainer.ArchitectureDoesNotFit, match=r"patch_size: nnU-Net configuration '3d_fullres' has 3"):
        trainer.fit_patch_size(arch, "'3d_fullres'", [32, 32, 32])
    with pytest.raises(
        trainer.ArchitectureDoesNotFit, match=r"patch_size: \[2, 40\] .* smaller than the network's stride 4"
    ):
        trainer.fit_patch_size(arch, "'2d'", [2, 40])


def test_the_trainers_network_follows_nnunets_deep_supervision_switch(exported: Path) -> None:
    trainer = load_trainer_module(exported)
    network = trainer.build_network(3, 4, True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outputs = network(x)  # eval mode too: nnU-Net's validation loss takes every output
        assert [tuple(o.shape) for o in outputs] == [(2, 4, 32, 32), (2, 4, 16, 16)]
        network.deep_supervision = False
        main = network(x)
    assert torch.equal(main, outputs[0])
    assert not network.network.training  # the switch left the norm layers' mode alone


def test_without_the_flag_no_trainer_is_written(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    out = export_trial(make_study(storage, "plain", weights_dir=tmp_path), 0, tmp_path / "export")
    assert not (out / "nnunet").exists() and "nnunet" not in json.loads((out / "metrics.json").read_text())


def test_nas_export_nnunet_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    make_study(open_storage(url, create=True), "cli", weights_dir=tmp_path)
    assert main(["export", "cli", "--trial", "1", "--nnunet", "--storage", url, "-o", str(tmp_path / "x")]) == 0
    assert "nnunet" in capsys.readouterr().out
    assert (tmp_path / "x" / "nnunet" / "nnUNetTrainer_cli_1.py").is_file()


# ---------------------------------------------------------------- nnU-Net itself (slow)

SHORT = '''
import torch
from {trainer} import {trainer}


class {trainer}_short({trainer}):
    """The exported trainer, for a test: two short epochs."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 12
        self.num_val_iterations_per_epoch = 2
'''


def _nnunet_venv() -> Path:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-nnunet-venv.sh")], capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, f"ensure-nnunet-venv.sh failed:\n{done.stderr[-3000:]}"
    venv = Path(done.stdout.strip().splitlines()[-1])
    return venv if venv.is_absolute() else ROOT / venv


def _raw_dataset(raw: Path, cases: int = 10, size: int = 48) -> None:
    """A tiny 2D nnU-Net dataset: grey PNG images of a bright disc on noise, the disc as label 1."""
    from PIL import Image

    folder = raw / "Dataset990_NasTiny"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(cases):
        cy, cx, r = rng.integers(12, size - 12), rng.integers(12, size - 12), rng.integers(5, 10)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)
        image = np.clip(60 + 120 * mask + rng.normal(0, 25, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / "imagesTr" / f"case{i:03d}_0000.png")
        Image.fromarray(mask).save(folder / "labelsTr" / f"case{i:03d}.png")
    meta = {
        "channel_names": {"0": "grey"},
        "labels": {"background": 0, "disc": 1},
        "numTraining": cases,
        "file_ending": ".png",
    }
    (folder / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.slow
def test_nnunet_trains_the_exported_architecture(exported: Path, tmp_path: Path) -> None:
    venv = _nnunet_venv()
    short = tmp_path / "short"
    short.mkdir()
    (short / f"{TRAINER}_short.py").write_text(SHORT.format(trainer=TRAINER))
    env = {
        **os.environ,
        "nnUNet_raw": str(tmp_path / "raw"),
        "nnUNet_preprocessed": str(tmp_path / "preprocessed"),
        "nnUNet_results": str(tmp_path / "results"),
        # nnU-Net looks for the trainer here; the short subclass imports the exported one via PYTHONPATH
        "nnUNet_extTrainer": str(short),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(exported / "nnunet")]),
        "nnUNet_n_proc_DA": "1",  # planning needs >= 1; training below runs augmentation in-process (0)
        # its validation exports segmentations through a pool of spawned processes, 8 by default, each
        # importing torch: 43 of the training's 58 s on 2 cores; one does for two 48×48 cases
        "nnUNet_def_n_proc": "1",
        "nnUNet_compile": "false",
        "OMP_NUM_THREADS": "2",
        "CUDA_VISIBLE_DEVICES": "",
    }
    _raw_dataset(tmp_path / "raw")
    started = time.perf_counter()

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(venv / "bin" / args[0]), *args[1:]], env={**env, **extra}, capture_output=True, text=True, timeout=1500
        )
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    run("nnUNetv2_plan_and_preprocess", "-d", "990", "-c", "2d", "-np", "1", "-npfp", "1", "--verify_dataset_integrity")
    trained = run("nnUNetv2_train", "990", "2d", "0", "-tr", f"{TRAINER}_short", "-device", "cpu", nnUNet_n_proc_DA="0")
    elapsed = time.perf_counter() - started
    fold = tmp_path / "results" / "Dataset990_NasTiny" / f"{TRAINER}_short__nnUNetPlans__2d" / "fold_0"
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    losses = checkpoint["logging"]["train_losses"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses), trained.stdout[-2000:]
    assert losses[-1] < losses[0], f"the loss did not fall over two epochs: {losses}"
    # The weights nnU-Net trained are our architecture's (plus the deep-supervision heads).
    spec = json.loads((exported / "arch.json").read_text())
    model = build_model(ArchSpec.from_dict({**spec, "deep_supervision": len(spec["channels"]) - 2}))
    weights = {k.removeprefix("network."): v for k, v in checkpoint["network_weights"].items()}
    model.load_state_dict(weights)
    summary = json.loads((fold / "validation" / "summary.json").read_text())  # nnU-Net's own inference ran
    assert "foreground_mean" in summary
    print(f"nnU-Net plan, preprocess and 2 short epochs on CPU: {elapsed:.0f} s", file=sys.stderr)
