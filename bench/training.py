"""Training benchmarks: how fast a candidate trains, against references measured in the same run.

- **Throughput** (training images per second: forward, Dice-CE loss, backward, AdamW step) of our
  U-Net without attention against MONAI's ``BasicUNet`` with the same widths (same depth, instance
  norm, transposed-convolution upsampling), and of our U-Net with attention gates at every skip
  against MONAI's ``AttentionUnet`` with the same widths and depth (strides of 2), in 2D and 3D; our
  U-Net with joint attention at its skips is shown beside them. Models alternate round by round;
  each figure is the best round.
- **Data pipeline**: one epoch of ``trainers.training_loader`` (random patch crops, flips and
  rotations from images decoded once into memory) feeding the same training step, against the same
  steps over batches pre-loaded as tensors (the pipeline's ideal). On DRIVE's 584×565 fundus images
  when ``$NAS_SHARED_DATA/drive`` exists, and always on the built-in synthetic images.

Part of ``bench/run.py`` (``BENCHMARKS.md`` holds the last full run). Alone: ``--quick`` is a smoke
run (fewer steps, one round); ``--output FILE`` also writes the results there.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import _report
import monai
import torch
from _report import Headline, Section
from monai.networks.nets import AttentionUnet, BasicUNet
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from search_spaces import ArchSpec, AttentionSpec, build_model  # noqa: E402
from trainers import (  # noqa: E402
    FilesConfig,
    SegmentationData,
    SyntheticConfig,
    TrainConfig,
    create_loss,
    load_files,
    make_optimizer,
    make_synthetic,
    training_loader,
)

Batch = tuple[torch.Tensor, torch.Tensor]


def step_fn(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One training step as ``trainers.train`` takes it (Dice-CE, AdamW)."""
    loss_fn = create_loss("dice_ce", channels=2)
    optimizer = make_optimizer(model, TrainConfig())
    model.train()

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()

    return step


def timed(step: Callable[[torch.Tensor, torch.Tensor], None], batches: Iterable[Batch]) -> tuple[float, int]:
    """Seconds and images for running ``step`` over ``batches`` (batch production included)."""
    started, images = time.perf_counter(), 0
    for x, y in batches:
        step(x, y)
        images += x.shape[0]
    return time.perf_counter() - started, images


@dataclass(frozen=True)
class Case:
    name: str
    dims: int
    shape: tuple[int, ...]
    batch: int
    widths: tuple[int, ...]


CASES = (
    Case("2D, 128×128, batch 8", 2, (128, 128), 8, (16, 32, 64, 128, 256)),
    Case("3D, 32³, batch 2", 3, (32, 32, 32), 2, (8, 16, 32, 64, 128)),
)


BASIC = "MONAI BasicUNet (reference)"
ATTENTION = "MONAI AttentionUnet (reference)"
PLAIN = "ours, unet, no attention"
GATES = "ours, unet, attention gates at every skip"
JOINT = "ours, unet, joint attention at skips 1-3"


def models(case: Case) -> dict[str, nn.Module]:
    ours = ArchSpec(spatial_dims=case.dims, in_channels=1, out_channels=2, channels=case.widths)
    every_skip = tuple(range(len(case.widths) - 1))
    gates = replace(ours, attention=AttentionSpec("ag", (), (("skip", every_skip),)))
    joint = replace(
        ours,
        attention=AttentionSpec(
            "joint", (("arrangement", "parallel"), ("shortcut", "inside")), (("skip", tuple(range(1, 4))),)
        ),
    )
    strides = (2,) * (len(case.widths) - 1)
    return {
        BASIC: BasicUNet(case.dims, 1, 2, features=(*case.widths, case.widths[0])),
        ATTENTION: AttentionUnet(case.dims, 1, 2, channels=case.widths, strides=strides),
        PLAIN: build_model(ours),
        GATES: build_model(gates),
        JOINT: build_model(joint),
    }


def throughput_rows(steps: int, rounds: int) -> list[tuple[str, str, float, int]]:
    """(case, model, images/s, parameters) for every case and model."""
    rows = []
    for case in CASES:
        torch.manual_seed(0)
        nets = models(case)
        x = torch.randn(case.batch, 1, *case.shape)
        y = (torch.rand(case.batch, 1, *case.shape) > 0.9).long()
        steppers = {name: step_fn(net) for name, net in nets.items()}
        for step in steppers.values():  # warm-up: allocator, first-call overheads
            timed(step, [(x, y)] * 2)
        best = dict.fromkeys(nets, 0.0)
        for _ in range(rounds):
            for name, step in steppers.items():
                seconds, images = timed(step, [(x, y)] * steps)
                best[name] = max(best[name], images / seconds)
        for name, net in nets.items():
            rows.append((case.name, name, best[name], sum(p.numel() for p in net.parameters())))
    return rows


def datasets(quick: bool) -> list[tuple[str, SegmentationData, int]]:
    """(description, data with patches, batch size)."""
    synthetic = make_synthetic(SyntheticConfig(n_train=8 if quick else 32, n_val=1, size=128))
    out = [("synthetic 128×128 images, 64×64 patches, 8 per image", replace(synthetic, patch=(64, 64)), 16)]
    drive = Path(os.environ.get("NAS_SHARED_DATA", HERE.parent.parent / "shared" / "data")) / "drive"
    if drive.is_dir():
        data = load_files(FilesConfig(kind="drive", path=str(drive), channels="green", patch=64, patches_per_image=8))
        if quick:
            data = replace(data, train_images=data.train_images[:4], train_labels=data.train_labels[:4])
        out.append(("DRIVE 584×565 fundus images (green), 64×64 patches, 8 per image", data, 16))
    return out


def pipeline_rows(quick: bool, rounds: int) -> list[tuple[str, float, float, float]]:
    """(data, pipeline s/epoch, pre-loaded s/epoch, loader-only s/epoch)."""
    rows = []
    for name, data, batch in datasets(quick):
        config = TrainConfig(batch_size=batch)
        torch.manual_seed(0)
        step = step_fn(build_model(ArchSpec(in_channels=data.in_channels, channels=(16, 32, 64, 128))))
        preloaded = [(b["image"], b["label"]) for b in training_loader(data, config)]
        timed(step, preloaded[:2])  # warm-up
        pipeline_s = preloaded_s = loader_s = float("inf")
        for _ in range(rounds):
            fresh = ((b["image"], b["label"]) for b in training_loader(data, config))
            pipeline_s = min(pipeline_s, timed(step, fresh)[0])
            preloaded_s = min(preloaded_s, timed(step, preloaded)[0])
            started = time.perf_counter()
            for _ in training_loader(data, config):
                pass
            loader_s = min(loader_s, time.perf_counter() - started)
        rows.append((name, pipeline_s, preloaded_s, loader_s))
    return rows


def headline(case: str, name: str, ips: float, reference: str, ref_ips: float, goal: float | None) -> Headline:
    ratio = ips / ref_ips
    return Headline(
        area="Training throughput",
        what=f"{case}: {name}",
        figure=f"{ips:.1f} images/s",
        reference=f"{reference.removesuffix(' (reference)')}, {ref_ips:.1f} images/s",
        ratio=ratio,
        goal="" if goal is None else f"≥ {goal:.1f}×",
        met=None if goal is None else ratio >= goal,
    )


def measure(quick: bool) -> Section:
    steps, rounds = (2, 1) if quick else (10, 3)
    throughput = throughput_rows(steps, rounds)
    pipeline = pipeline_rows(quick, rounds)
    lines = [
        "### Training throughput (forward + Dice-CE + backward + AdamW; best round)",
        "",
        "| input | model | parameters | images/s | × BasicUNet | × AttentionUnet | goal ≥ 1.0× (no attention) |",
        "|---|---|---|---|---|---|---|",
    ]
    ips_of = {(case, name): ips for case, name, ips, _ in throughput}
    headlines = []
    for case, name, ips, params in throughput:
        basic, attention = ips / ips_of[case, BASIC], ips / ips_of[case, ATTENTION]
        goal = ("met" if basic >= 1.0 else "not met") if name == PLAIN else ""
        lines.append(f"| {case} | {name} | {params:,} | {ips:.1f} | {basic:.2f} | {attention:.2f} | {goal} |")
        if name == PLAIN:
            headlines.append(headline(case, name, ips, BASIC, ips_of[case, BASIC], 1.0))
        elif name == GATES:
            headlines.append(headline(case, name, ips, ATTENTION, ips_of[case, ATTENTION], None))
        elif name == JOINT:
            headlines.append(headline(case, name, ips, BASIC, ips_of[case, BASIC], None))
    lines += [
        "",
        "Our attention-gate row is the like-for-like counterpart of `AttentionUnet` (same widths, depth and "
        "gated skips), not an identical network: `AttentionUnet` has no norm option and uses batch norm in "
        "its encoder, upsampling and gates (ours and `BasicUNet` use instance norm), downsamples with a "
        "stride-2 convolution instead of max pooling, upsamples with a kernel-3 transposed convolution "
        "followed by batch norm and ReLU (ours: kernel 2, nothing after), has one convolution per decoder "
        "level instead of two (instance norm and PReLU, MONAI's defaults), and gates each skip with the "
        "upsampled decoder feature where ours gates it with the coarser one.",
        "",
        "### Data pipeline against pre-loaded tensors (one epoch, same steps, best round)",
        "",
        "| data | pipeline (s) | pre-loaded (s) | throughput × pre-loaded | goal ≥ 0.9× | loader alone (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, pipe, pre, loader in pipeline:
        ratio = pre / pipe
        lines.append(
            f"| {name} | {pipe:.2f} | {pre:.2f} | {ratio:.2f} | {'met' if ratio >= 0.9 else 'not met'} | {loader:.2f} |"
        )
        headlines.append(
            Headline(
                area="Training throughput",
                what=f"data pipeline, one epoch: {name}",
                figure=f"{pipe:.2f} s",
                reference=f"pre-loaded tensors, {pre:.2f} s",
                ratio=ratio,
                goal="≥ 0.9×",
                met=ratio >= 0.9,
            )
        )
    lines += [
        "",
        "The pipeline decodes every image once, into memory, when the data is loaded (what MONAI's "
        "`CacheDataset` does for the deterministic transforms); per epoch it runs only the random crops, "
        "flips and rotations, in the training process.",
        "",
    ]
    versions = (f"torch {torch.__version__}", f"monai {monai.__version__}", f"{torch.get_num_threads()} torch threads")
    return Section("Training throughput", "\n".join(lines), headlines, versions)


def main(argv: Sequence[str] | None = None) -> int:
    return _report.standalone(measure, "training.py", argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
