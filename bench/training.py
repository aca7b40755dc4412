"""Training benchmarks: how fast a candidate trains, against references measured in the same run.

- **Throughput** (training images per second: forward, Dice-CE loss, backward, AdamW step) of our
  U-Net without attention against MONAI's ``BasicUNet`` with the same widths (same depth, instance
  norm, transposed-convolution upsampling), in 2D and 3D; our U-Net with joint attention at its
  skips is shown beside them. Models alternate round by round; each figure is the best round.
- **Data pipeline**: one epoch of ``trainers.training_loader`` (random patch crops, flips and
  rotations from images decoded once into memory) feeding the same training step, against the same
  steps over batches pre-loaded as tensors (the pipeline's ideal). On DRIVE's 584×565 fundus images
  when ``$NAS_SHARED_DATA/drive`` exists, and always on the built-in synthetic images.

Writes ``bench/RESULTS-training.md``. ``--quick`` is a smoke run (fewer steps, one round).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import _machine
import monai
import torch
from monai.networks.nets import BasicUNet
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


def models(case: Case) -> dict[str, nn.Module]:
    ours = ArchSpec(spatial_dims=case.dims, in_channels=1, out_channels=2, channels=case.widths)
    joint = replace(
        ours,
        attention=AttentionSpec(
            "joint", (("arrangement", "parallel"), ("shortcut", "inside")), (("skip", tuple(range(1, 4))),)
        ),
    )
    return {
        "MONAI BasicUNet (reference)": BasicUNet(case.dims, 1, 2, features=(*case.widths, case.widths[0])),
        "ours, unet, no attention": build_model(ours),
        "ours, unet, joint attention at skips 1-3": build_model(joint),
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


def render(
    throughput: list[tuple[str, str, float, int]],
    pipeline: list[tuple[str, float, float, float]],
    command: str,
) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    versions = f"torch {torch.__version__}; monai {monai.__version__}; {torch.get_num_threads()} threads"
    lines = [
        "# Training benchmarks",
        "",
        f"- date: {now}",
        f"- machine: {_machine.machine(versions)}",
        f"- command: `{command}`",
        "",
        "## Training throughput (forward + Dice-CE + backward + AdamW; best round)",
        "",
        "| input | model | parameters | images/s | × BasicUNet | goal ≥ 1.0× (no attention) |",
        "|---|---|---|---|---|---|",
    ]
    reference = {case: ips for case, name, ips, _ in throughput if name.startswith("MONAI")}
    for case, name, ips, params in throughput:
        ratio = ips / reference[case]
        goal = ("met" if ratio >= 1.0 else "not met") if "no attention" in name else ""
        lines.append(f"| {case} | {name} | {params:,} | {ips:.1f} | {ratio:.2f} | {goal} |")
    lines += [
        "",
        "## Data pipeline against pre-loaded tensors (one epoch, same steps, best round)",
        "",
        "| data | pipeline (s) | pre-loaded (s) | throughput × pre-loaded | goal ≥ 0.9× | loader alone (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, pipe, pre, loader in pipeline:
        ratio = pre / pipe
        lines.append(
            f"| {name} | {pipe:.2f} | {pre:.2f} | {ratio:.2f} | {'met' if ratio >= 0.9 else 'not met'} | {loader:.2f} |"
        )
    lines += [
        "",
        "The pipeline decodes every image once, into memory, when the data is loaded (what MONAI's "
        "`CacheDataset` does for the deterministic transforms); per epoch it runs only the random crops, "
        "flips and rotations, in the training process.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps, one round (a smoke run)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS-training.md")
    args = parser.parse_args(argv)
    steps, rounds = (2, 1) if args.quick else (10, 3)
    throughput = throughput_rows(steps, rounds)
    pipeline = pipeline_rows(args.quick, rounds)
    text = render(throughput, pipeline, "python bench/training.py" + (" --quick" if args.quick else ""))
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
