"""Benchmarks of the search space: self-attention cost at a full-resolution skip level, and the
pre-training memory estimate against measured peaks.

    .venv/bin/python bench/search_space.py            # writes bench/RESULTS-search-space.md

Times are medians of forward+backward passes (batch 1, one warm-up); peaks are the bytes CPU torch
allocates during one forward+backward pass (profiler allocation events). Speed figures are ratios
against a 3x3 convolution of the same width measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _machine
import torch
from torch import nn

from search_spaces import SampleContext, SearchSpace, build_model, sample_spec
from search_spaces.blocks import SelfAttentionResponse
from trainers import estimate_peak_memory, measure_peak_memory

HERE = Path(__file__).resolve().parent


class NaiveDotAttention(nn.Module):
    """The N×N form of dot-product self-attention, for reference only (same weights as the block)."""

    def __init__(self, block: SelfAttentionResponse) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        theta, phi, g = (conv(x).flatten(2) for conv in (b.theta, b.phi, b.g))
        similarity = torch.bmm(theta.transpose(1, 2), phi) / theta.shape[-1]  # (B, N, N)
        y = torch.bmm(g, similarity.transpose(1, 2))
        return b.out(y.reshape(x.shape[0], -1, *x.shape[2:]))  # type: ignore[no-any-return]


def time_fwd_bwd(module: nn.Module, shape: Sequence[int], repeats: int) -> float:
    x = torch.randn(*shape)
    start = time.perf_counter()
    module(x).square().mean().backward()  # warm-up
    if time.perf_counter() - start > 5.0:
        repeats = 1  # minutes-long passes (softmax at 256²): one timed pass is enough
    times = []
    for _ in range(repeats):
        module.zero_grad(set_to_none=True)
        start = time.perf_counter()
        module(x).square().mean().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive_rows(sides: Sequence[int], channels: int, repeats: int) -> list[dict[str, Any]]:
    """The associative dot form against the naive N×N form at sizes where the latter fits."""
    rows = []
    for side in sides:
        shape = (1, channels, side, side)
        block = SelfAttentionResponse(2, channels, similarity="dot")
        fast = time_fwd_bwd(block, shape, repeats)
        naive = NaiveDotAttention(block)
        slow = time_fwd_bwd(naive, shape, repeats)
        rows.append(
            {
                "side": side,
                "fast_s": fast,
                "naive_s": slow,
                "fast_mb": measure_peak_memory(block, shape[1:]) / 2**20,
                "naive_mb": measure_peak_memory(naive, shape[1:]) / 2**20,
            }
        )
    return rows


def attention_rows(side: int, channels: int, repeats: int) -> list[dict[str, Any]]:
    shape = (1, channels, side, side)
    conv = nn.Conv2d(channels, channels, 3, padding=1)
    candidates: list[tuple[str, nn.Module]] = [
        ("3x3 convolution (reference)", conv),
        ("sa dot, associative θ·(φᵀg)/N", SelfAttentionResponse(2, channels, similarity="dot")),
        ("sa softmax, SDPA", SelfAttentionResponse(2, channels, similarity="softmax")),
    ]
    n = side * side
    naive_bytes = 3 * n * n * 4  # similarity, its gradient and a transpose buffer
    if naive_bytes < 6 * 2**30:
        candidates.append(
            ("sa dot, naive N×N", NaiveDotAttention(SelfAttentionResponse(2, channels, similarity="dot")))
        )
    rows = []
    reference = None
    for name, module in candidates:
        seconds = time_fwd_bwd(module, shape, repeats)
        peak = measure_peak_memory(module, shape[1:])
        reference = reference or seconds
        rows.append({"name": name, "seconds": seconds, "ratio": seconds / reference, "peak_mb": peak / 2**20})
    if naive_bytes >= 6 * 2**30:
        rows.append({"name": "sa dot, naive N×N", "skipped": f"needs > {naive_bytes / 2**30:.0f} GiB"})
    return rows


class _SeededTrial:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def memory_rows(count: int) -> list[dict[str, Any]]:
    space = SearchSpace.widest()
    rows = []
    for seed in range(count):
        dims = 2 if seed % 2 == 0 else 3
        spec = sample_spec(_SeededTrial(seed), space, SampleContext(spatial_dims=dims))
        shape = (1, 64, 64) if dims == 2 else (1, 32, 32, 32)
        model = build_model(spec)
        start = time.perf_counter()
        estimate = estimate_peak_memory(model, shape)
        seconds = time.perf_counter() - start
        measured = measure_peak_memory(model, shape)
        rows.append(
            {
                "label": spec.short_label(),
                "shape": "x".join(str(s) for s in shape[1:]),
                "estimate_mb": estimate.peak_bytes / 2**20,
                "measured_mb": measured / 2**20,
                "ratio": estimate.peak_bytes / measured,
                "seconds": seconds,
            }
        )
    return rows


def machine() -> str:
    return _machine.machine(f"{torch.get_num_threads()} torch threads", f"torch {torch.__version__}")


def render(
    att: list[dict[str, Any]],
    naive: list[dict[str, Any]],
    mem: list[dict[str, Any]],
    side: int,
    channels: int,
    command: str,
) -> str:
    lines = [
        "# Search-space benchmarks",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        "",
        f"## Self-attention at a {side}x{side} skip level, {channels} channels (forward+backward, batch 1)",
        "",
        "| module | time (s) | × 3x3 conv | peak memory (MiB) |",
        "|---|---|---|---|",
    ]
    for row in att:
        if "skipped" in row:
            lines.append(f"| {row['name']} | skipped: {row['skipped']} | | |")
        else:
            lines.append(f"| {row['name']} | {row['seconds']:.4f} | {row['ratio']:.2f} | {row['peak_mb']:.1f} |")
    lines += [
        "",
        f"## Associative vs naive N×N dot attention, {channels} channels (forward+backward, batch 1)",
        "",
        "| level | associative (s) | naive (s) | naive ÷ associative | associative peak (MiB) | naive peak (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in naive:
        lines.append(
            f"| {row['side']}x{row['side']} | {row['fast_s']:.4f} | {row['naive_s']:.4f} | "
            f"{row['naive_s'] / row['fast_s']:.1f} | {row['fast_mb']:.1f} | {row['naive_mb']:.1f} |"
        )
    worst = max(abs(r["ratio"] - 1) for r in mem)
    lines += [
        "",
        f"## Memory estimate vs measured peak, {len(mem)} random specs of the widest space",
        "",
        f"Worst deviation: {worst:.0%} (goal ±30%). Estimate time is the pre-training cost per spec.",
        "",
        "| spec | input | estimate (MiB) | measured (MiB) | ratio | estimate time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in mem:
        lines.append(
            f"| `{row['label']}` | {row['shape']} | {row['estimate_mb']:.1f} | {row['measured_mb']:.1f} | "
            f"{row['ratio']:.2f} | {row['seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64x64 level, 4 specs, 1 repeat (a smoke run)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS-search-space.md")
    args = parser.parse_args(argv)
    side, count, repeats = (64, 4, 1) if args.quick else (256, 20, 3)
    channels = 32
    att = attention_rows(side, channels, repeats)
    naive = naive_rows((32,) if args.quick else (64, 128), channels, repeats)
    mem = memory_rows(count)
    command = "python bench/search_space.py" + (" --quick" if args.quick else "")
    text = render(att, naive, mem, side, channels, command)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
