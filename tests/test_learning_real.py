"""Learning checks on the shared real datasets, at CPU budgets of a few minutes each (marked slow).

Reference (the issue's): a plain MONAI UNet trained for 150 s on this 2-core machine reached DRIVE
0.79 (test, inside the FOV), MSD hippocampus 0.84 (20% hold-out), Kvasir-SEG 0.66 (200-image
hold-out). Ours must reach 0.75, 0.75 and 0.60 at comparable budgets; each check also shows that an
untrained network and a constant predictor score far below the bar, so the bar measures learning.
Budgets are epochs, not seconds, so that a run is reproducible for its seed on any machine; on this
2-core machine (2026-12-04) they take about 85 s (DRIVE, 0.785), 190 s (hippocampus, 4 epochs, 0.809)
and 175 s (Kvasir-SEG at 96², 0.638). Hippocampus at 5 epochs reached 0.828 in 260 s, Kvasir-SEG at
128² 0.679 in 340 s: the shorter budgets keep 0.04-0.06 above their bars and halve the suite's
longest tests (Kvasir-SEG at 128² for 7 epochs reached only 0.601, hippocampus at 3 epochs 0.752).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from torch import nn

from search_spaces import ArchSpec, build_model
from tests.conftest import SHARED_DATA
from trainers import FilesConfig, SegmentationData, TrainConfig, evaluate, load_files, train

pytestmark = pytest.mark.slow


def needs(folder: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SHARED_DATA / folder).is_dir(), reason=f"{SHARED_DATA / folder} is not present")


class Constant(nn.Module):
    """Predicts one class everywhere."""

    def __init__(self, classes: int, value: int) -> None:
        super().__init__()
        self.classes, self.value = classes, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.classes, *x.shape[2:])
        out[:, self.value] = 10.0
        return out


def test_dice(model: nn.Module, data: SegmentationData) -> float:
    return evaluate(
        model,
        data.test_images,
        data.test_labels,
        num_classes=data.num_classes,
        masks=data.test_masks,
        window=data.patch,
    )


test_dice.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def check(
    data: SegmentationData,
    spec: ArchSpec,
    config: TrainConfig,
    bar: float,
    capsys: pytest.CaptureFixture[str],
    name: str,
    baselines: Callable[[], list[nn.Module]],
) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    untrained = test_dice(build_model(spec), data)
    constants = [test_dice(m, data) for m in baselines()]
    started = time.perf_counter()
    result = train(build_model(spec), data, config)
    seconds = time.perf_counter() - started
    assert result.test_metrics is not None
    dice = result.test_metrics.mean["dice"]
    with capsys.disabled():
        print(
            f"\n{name}: test Dice {dice:.4f} (bar {bar}) after {len(result.history)} epochs, {seconds:.0f} s; "
            f"untrained {untrained:.4f}, constant {', '.join(f'{c:.4f}' for c in constants)}"
        )
    assert dice >= bar
    assert untrained < bar - 0.2 and all(c < bar - 0.2 for c in constants)


@needs("drive")
def test_drive_vessels_inside_the_field_of_view(capsys: pytest.CaptureFixture[str]) -> None:
    data = load_files(
        FilesConfig(kind="drive", path=str(SHARED_DATA / "drive"), channels="green", patch=64, patches_per_image=32)
    )
    spec = ArchSpec(in_channels=1, channels=(16, 32, 64, 128))
    config = TrainConfig(epochs=10, batch_size=16, lr=3e-3)
    check(data, spec, config, 0.75, capsys, "DRIVE", lambda: [Constant(2, 0), Constant(2, 1)])


@needs("msd_hippocampus")
def test_msd_hippocampus_whole_volumes_in_3d(capsys: pytest.CaptureFixture[str]) -> None:
    data = load_files(
        FilesConfig(kind="msd", path=str(SHARED_DATA / "msd_hippocampus"), val_fraction=0.1, test_fraction=0.2)
    )
    assert len(data.test_images) == 52 and data.num_classes == 3  # a 20% hold-out of 260 volumes
    spec = ArchSpec(spatial_dims=3, in_channels=1, out_channels=3, channels=(8, 16, 32, 64))
    config = TrainConfig(epochs=4, batch_size=4, lr=3e-3)
    check(data, spec, config, 0.75, capsys, "MSD hippocampus", lambda: [Constant(3, 0), Constant(3, 1), Constant(3, 2)])


@needs("kvasir_seg")
def test_kvasir_polyps_resized_to_96(capsys: pytest.CaptureFixture[str]) -> None:
    data = load_files(
        FilesConfig(
            kind="folder2d",
            path=str(SHARED_DATA / "kvasir_seg"),
            channels="rgb",
            size=96,
            val_fraction=0.1,
            test_fraction=0.2,
        )
    )
    assert len(data.test_images) == 200  # the 200-image hold-out
    spec = ArchSpec(in_channels=3, backbone="resunet", channels=(16, 32, 64, 128, 256))
    config = TrainConfig(epochs=10, batch_size=16, lr=2e-3)
    check(data, spec, config, 0.60, capsys, "Kvasir-SEG", lambda: [Constant(2, 0), Constant(2, 1)])
