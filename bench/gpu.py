"""The GPU path, measured: AMP and channels-last throughput, packed trials, attention kernels, memory.

On a CUDA device (run it there as one short script: ``python bench/gpu.py --output gpu.md``):

- **Throughput** (training images/s: forward, Dice-CE, backward, AdamW step) of our U-Net without
  attention and with attention gates at every skip against MONAI's ``BasicUNet`` and
  ``AttentionUnet`` with the same widths (``bench/training.py``'s pairs), 2D 256² (batch 8) and 3D
  96³ (batch 2), each in float32 and in the product's training mode (float16 autocast with loss
  scaling, channels-last in 2D: what ``trainers.train`` does on CUDA).
- **Packing**: four trials sharing the device (four worker processes, as Ray runs four trials at
  ``resources.gpus: 0.25``) against one trial alone: images/s per trial and in all, peak memory per
  trial (``torch.cuda.max_memory_allocated`` in each process).
- **Attention kernels**: softmax self-attention (``sa``, SDPA) and DANet's PAM (SDPA, query/key
  padded to C) at 128² and 256² (C = 32) and 64³ (C = 16): forward+backward time against a 3×3
  convolution at the same size, and peak memory.
- **The memory estimate**: ``trainers.estimate_peak_memory`` before training against
  ``torch.cuda.max_memory_allocated`` over one training step at batch 1, for candidates with and
  without attention.

Without CUDA, ``--quick`` runs every part at toy sizes on the CPU (a smoke test of the code path; the
test suite runs it) and the report says that no GPU figures were measured; a full run without CUDA
measures nothing. Part of ``bench/run.py``.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import _report
import torch
from _report import Headline, Section
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from training import ATTENTION, BASIC, GATES, PLAIN, Case, models  # noqa: E402

from search_spaces import ArchSpec, AttentionSpec, build_model, create_block  # noqa: E402
from trainers import TrainConfig, create_loss, estimate_peak_memory, make_optimizer, measure_peak_memory  # noqa: E402

FULL_CASES = (
    Case("2D, 256×256, batch 8", 2, (256, 256), 8, (16, 32, 64, 128, 256)),
    Case("3D, 96³, batch 2", 3, (96, 96, 96), 2, (8, 16, 32, 64, 128)),
)
QUICK_CASES = (Case("2D, 32×32, batch 2 (smoke)", 2, (32, 32), 2, (4, 8, 8, 8, 8)),)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_mib(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None


def train_steps(model: nn.Module, case: Case, steps: int, *, amp: bool, dev: torch.device) -> float:
    """Images per second over ``steps`` training steps after two warm-up steps, in the product's
    mode when ``amp`` (float16 autocast + GradScaler, channels-last in 2D; CUDA only)."""
    model = model.to(dev)
    cuda = dev.type == "cuda"
    fast = amp and cuda
    if fast and case.dims == 2:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loss_fn = create_loss("dice_ce", channels=2)
    optimizer = make_optimizer(model, TrainConfig())
    scaler = torch.amp.GradScaler("cuda", enabled=fast)
    x = torch.randn(case.batch, 1, *case.shape, device=dev)
    if fast and case.dims == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (case.batch, 1, *case.shape), device=dev)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=fast):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(2):
        step()
    _sync(dev)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    return steps * case.batch / (time.perf_counter() - started)


@dataclass(frozen=True)
class Throughput:
    case: str
    model: str
    mode: str
    images_per_s: float


def throughput(cases: Sequence[Case], steps: int, dev: torch.device) -> list[Throughput]:
    out = []
    for case in cases:
        for mode, amp in (("float32", False), ("AMP + channels-last" if case.dims == 2 else "AMP", True)):
            if amp and dev.type != "cuda":
                continue  # autocast in float16 is the CUDA path; on the CPU the product trains in float32
            for name, model in models(case).items():
                if name not in (BASIC, ATTENTION, PLAIN, GATES):
                    continue
                torch.manual_seed(0)
                out.append(Throughput(case.name, name, mode, train_steps(model, case, steps, amp=amp, dev=dev)))
                del model
                _peak_reset(dev)
    return out


def _packed_task(args: tuple[Case, int, bool]) -> tuple[float, float | None]:
    """One packed trial in a pool worker: images/s and its peak MiB (CUDA)."""
    case, steps, amp = args
    dev = device()
    torch.set_num_threads(1)
    spec = ArchSpec(spatial_dims=case.dims, in_channels=1, out_channels=2, channels=case.widths)
    _peak_reset(dev)
    rate = train_steps(build_model(spec), case, steps, amp=amp, dev=dev)
    return rate, _peak_mib(dev)


def packing(case: Case, steps: int, workers: int) -> dict[int, tuple[list[float], list[float | None]]]:
    """{n: (images/s of each of n concurrent trials, their peak MiB)} for n = 1 and ``workers``: one
    pool of ``workers`` processes (each its own CUDA context, as Ray's trial workers), already
    started, so the n trials of a round train at the same time."""
    ctx = mp.get_context("spawn")  # a CUDA context does not survive fork
    amp = torch.cuda.is_available()
    out = {}
    with ctx.Pool(workers) as pool:
        pool.map(_warm, range(workers), chunksize=1)  # every worker has imported torch and the package
        for n in (1, workers):
            results = pool.map(_packed_task, [(case, steps, amp)] * n, chunksize=1)
            out[n] = ([r[0] for r in results], [r[1] for r in results])
    return out


def _warm(_: int) -> None:
    time.sleep(0.5)  # long enough that every worker takes one


@dataclass(frozen=True)
class KernelRow:
    label: str
    size: str
    seconds: float
    peak_mib: float | None
    conv_seconds: float


def _fwd_bwd(module: nn.Module, x: torch.Tensor, repeats: int, dev: torch.device) -> float:
    module(x).square().mean().backward()
    times = []
    for _ in range(repeats):
        module.zero_grad(set_to_none=True)
        _sync(dev)
        started = time.perf_counter()
        module(x).square().mean().backward()
        _sync(dev)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def kernels(sizes: Sequence[tuple[int, int, int]], repeats: int, dev: torch.device) -> list[KernelRow]:
    """``sizes``: (dims, side, channels)."""
    rows = []
    for dims, side, channels in sizes:
        x = torch.randn(1, channels, *(side,) * dims, device=dev, requires_grad=True)
        conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(channels, channels, 3, padding=1).to(dev)
        conv_s = _fwd_bwd(conv, x, repeats, dev)
        label = "×".join([str(side)] * dims) + f", C = {channels}"
        builds: tuple[tuple[str, str, dict[str, str]], ...] = (
            ("sa softmax (SDPA)", "sa", {"similarity": "softmax"}),
            ("pam (SDPA, query/key padded to C)", "pam", {}),
        )
        for name, block, options in builds:
            module = create_block(block, dims, channels, **options).to(dev)
            _peak_reset(dev)
            seconds = _fwd_bwd(module, x, repeats, dev)
            rows.append(KernelRow(name, label, seconds, _peak_mib(dev), conv_s))
            del module
    return rows


@dataclass(frozen=True)
class MemoryRow:
    label: str
    estimated_mib: float
    measured_mib: float


def memory(shape: tuple[int, ...], dev: torch.device) -> list[MemoryRow]:
    """Estimate against the measured peak of one training step at batch 1 (the study's screen)."""
    base = ArchSpec(spatial_dims=len(shape) - 1, in_channels=shape[0], out_channels=2, channels=(16, 32, 64, 128))
    deepest = len(base.channels) - 1
    specs = {
        "unet, no attention": base,
        "attention gates at every skip": replace(base, attention=AttentionSpec("ag", (), (("skip", (0, 1, 2)),))),
        "pam at the bottleneck": replace(base, attention=AttentionSpec("pam", (), (("bottleneck", (deepest,)),))),
        "sa softmax at skips 1-2": replace(
            base, attention=AttentionSpec("sa", (("similarity", "softmax"),), (("skip", (1, 2)),))
        ),
    }
    rows = []
    for label, spec in specs.items():
        model = build_model(spec)
        estimated = estimate_peak_memory(model, shape).peak_bytes / 2**20
        if dev.type == "cuda":
            model = model.to(dev)
            loss_fn = create_loss("dice_ce", channels=2)
            x = torch.randn(1, *shape, device=dev)
            y = torch.randint(0, 2, (1, 1, *shape[1:]), device=dev)
            torch.cuda.synchronize(dev)
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            loss_fn(model(x), y).backward()
            torch.cuda.synchronize(dev)
            measured = (torch.cuda.max_memory_allocated(dev) - before) / 2**20
        else:
            measured = measure_peak_memory(model, shape) / 2**20
        rows.append(MemoryRow(label, estimated, measured))
        del model
    return rows


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mib(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def measure(quick: bool) -> Section:
    dev = device()
    title = "GPU path"
    if dev.type != "cuda" and not quick:
        return Section(
            title,
            "Not measured: this machine has no CUDA device. Run `python bench/gpu.py` on one (one short "
            "script, about 5 minutes) and its figures land here.",
        )
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (smoke run: these are not GPU figures)"
    cases = QUICK_CASES if quick else FULL_CASES
    rates = throughput(cases, 2 if quick else 20, dev)
    pack_case = cases[0]
    packed = packing(pack_case, 2 if quick else 30, 2 if quick else 4)
    sizes = [(2, 16, 4), (3, 8, 4)] if quick else [(2, 128, 32), (2, 256, 32), (3, 64, 16)]
    kernel_rows = kernels(sizes, 1 if quick else 10, dev)
    memory_rows = memory((1, 32, 32) if quick else (1, 256, 256), dev)

    body = [
        f"Device: **{name}**; torch {torch.__version__}"
        + (f", CUDA {torch.version.cuda}" if dev.type == "cuda" else "")
    ]
    body.append("\n### Training throughput (images/s; ratio: ours ÷ MONAI's same-width network, same mode)\n")
    lookup = {(r.case, r.model, r.mode): r.images_per_s for r in rates}
    rows, headlines = [], []
    for r in rates:
        reference = BASIC if r.model == PLAIN else ATTENTION if r.model == GATES else None
        ratio = lookup[(r.case, reference, r.mode)] if reference else None
        rel = r.images_per_s / ratio if ratio else None
        rows.append((r.case, r.mode, r.model, f"{r.images_per_s:.1f}", _report.fmt_ratio(rel)))
        if reference and dev.type == "cuda" and r.mode != "float32":
            headlines.append(
                Headline("GPU", f"{r.model}, {r.case}, {r.mode}", f"{r.images_per_s:.1f} img/s", reference, rel)
            )
    body.append(_table(("case", "mode", "model", "images/s", "ours ÷ MONAI"), rows))
    single = packed[1][0][0]
    n = max(packed)
    each, peaks = packed[n]
    body.append(f"\n### {n} trials sharing the device against one alone ({pack_case.name}, ours without attention)\n")
    body.append(
        _table(
            ("trials at once", "images/s per trial", "images/s in all", "in all ÷ one alone", "peak MiB per trial"),
            [
                (1, f"{single:.1f}", f"{single:.1f}", "1.00×", _mib(packed[1][1][0])),
                (n, f"{statistics.mean(each):.1f}", f"{sum(each):.1f}", _report.fmt_ratio(sum(each) / single),
                 ", ".join(_mib(p) for p in peaks if p is not None)),
            ],
        )
    )  # fmt: skip
    if dev.type == "cuda":
        headlines.append(
            Headline(
                "GPU", f"{n} packed trials, {pack_case.name}", f"{sum(each):.1f} img/s", "one trial", sum(each) / single
            )
        )
    body.append("\n### Attention kernels, forward+backward (ratio: ÷ a 3×3 convolution at the same size)\n")
    body.append(
        _table(
            ("kernel", "size", "ms", "÷ 3×3 conv", "peak MiB"),
            [
                (k.label, k.size, f"{1000 * k.seconds:.2f}", _report.fmt_ratio(k.seconds / k.conv_seconds),
                 _mib(k.peak_mib))
                for k in kernel_rows
            ],
        )
    )  # fmt: skip
    body.append(
        "\n### Memory estimate before training against the measured peak of one step "
        f"({'torch.cuda.max_memory_allocated' if dev.type == 'cuda' else 'the CPU profiler'}), batch 1\n"
    )
    body.append(
        _table(
            ("candidate", "estimated MiB", "measured MiB", "estimate ÷ measured"),
            [
                (m.label, f"{m.estimated_mib:.1f}", f"{m.measured_mib:.1f}",
                 _report.fmt_ratio(m.estimated_mib / m.measured_mib))
                for m in memory_rows
            ],
        )
    )  # fmt: skip
    return Section(title, "\n".join(body), headlines, versions=(f"torch {torch.__version__}",))


def main(argv: Sequence[str] | None = None) -> int:
    return _report.standalone(measure, "gpu.py", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
