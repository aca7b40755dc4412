"""Attention kernels against a 3×3 convolution of the same width and against the naive N×N form.

    .venv/bin/python bench/kernels.py            # every size (about 2-3 minutes on an idle 2-core machine)
    .venv/bin/python bench/kernels.py --quick    # 64² and 32³ only, one timed pass (a smoke run)

Every kernel is built through the block registry (``search_spaces.create_block``) with 32 channels
and run at batch 1 on 2D levels of 64², 128² and 256² and 3D levels of 32³ and 64³: self-attention
with dot similarity (the associative form ``θ·(φᵀg)/N``, never an N×N matrix) and with softmax
similarity (``scaled_dot_product_attention``), criss-cross attention (``cca``), DANet's position
attention (``pam``, through SDPA with its C/8-channel query and key zero-padded to C so the fused
kernel applies) beside its unpadded form (the math kernel, an N×N matrix, where that fits), DANet's
channel attention (``cam``), the nine joint-attention variants (``joint``: PWA and SA arranged in
parallel, SA first or PWA first, with the shortcut inside, outside or separate; dot similarity), and
the naive N×N form of dot self-attention (same weights) where its N×N matrices fit in memory. Times
are medians of forward+backward passes after a warm-up; peaks are the bytes CPU torch allocates
during one forward+backward pass (profiler allocation events; the input and the parameters exist
before it). Both are ratios against a 3x3 convolution of the same width measured in the same run. A
kernel whose pass would take longer than a limit, extrapolated from its time at a smaller size, is
skipped and said so, never estimated.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import _report
import torch
from _report import Headline, Section
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from search_spaces import create_block  # noqa: E402
from search_spaces.blocks import ARRANGEMENTS, SHORTCUTS, SelfAttention  # noqa: E402
from trainers import measure_peak_memory  # noqa: E402

AREA = "Attention kernels"
CHANNELS = 32
SIDES_2D = (64, 128, 256)
SIDES_3D = (32, 64)
#: A kernel is skipped at a size where its pass is expected to take longer than this (seconds).
LIMIT_S = 30.0
QUICK_LIMIT_S = 2.0
#: In quick mode, kernels (other than the reference) starting after this many seconds are skipped.
QUICK_DEADLINE_S = 15.0
#: Timed passes stop once they have used this much time (at least one pass is always timed).
TIMING_BUDGET_S = 5.0
#: The naive form is run only where its N×N buffers (similarity, its gradient, a transpose) fit in this.
NAIVE_MEMORY_LIMIT = 6 * 2**30
JOINTS = tuple((arrangement, shortcut) for arrangement in ARRANGEMENTS for shortcut in SHORTCUTS)
#: In quick mode: each arrangement and each shortcut once.
QUICK_JOINTS = (("parallel", "inside"), ("sa_first", "outside"), ("pwa_first", "separate"))
CONV = "conv"
SA_DOT = "sa dot"
SA_SOFTMAX = "sa softmax"
CCA = "cca"
NAIVE = "naive"
PAM = "pam"
PAM_UNPADDED = "pam unpadded"


class NaiveDotAttention(nn.Module):
    """The N×N form of the dot self-attention block, for reference only (same weights and residual)."""

    def __init__(self, block: SelfAttention) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block.attention
        theta, phi, g = (conv(x).flatten(2) for conv in (b.theta, b.phi, b.g))
        similarity = torch.bmm(theta.transpose(1, 2), phi) / theta.shape[-1]  # (B, N, N)
        y = torch.bmm(g, similarity.transpose(1, 2))
        return x + b.out(y.reshape(x.shape[0], -1, *x.shape[2:]))


class UnpaddedPositionAttention(nn.Module):
    """PAM as it was before 2026-12-02, for reference only: query and key at C/8 channels, value at C,
    into SDPA with unequal head sizes, which CPU torch runs through its math kernel (an N×N matrix)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.block.qkv
        q, k, v = (t.flatten(2).transpose(1, 2).contiguous().unsqueeze(1) for t in qkv(x))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0).squeeze(1).transpose(1, 2)
        return x + qkv.gamma * out.reshape(x.shape)


def time_fwd_bwd(
    module: nn.Module, shape: Sequence[int], repeats: int, *, warm_up: bool = True, budget_s: float = TIMING_BUDGET_S
) -> float:
    """Median seconds of a forward+backward pass of ``module`` on a random ``shape`` input.

    One untimed warm-up pass first unless the caller has just run one (``warm_up=False``); then up to
    ``repeats`` timed passes, stopping once they have used ``budget_s``: a pass slower than that (softmax
    attention at 256²) is timed once.
    """
    x = torch.randn(*shape)
    if warm_up:
        module(x).square().mean().backward()
    times: list[float] = []
    for _ in range(repeats):
        module.zero_grad(set_to_none=True)
        start = time.perf_counter()
        module(x).square().mean().backward()
        times.append(time.perf_counter() - start)
        if sum(times) >= budget_s:
            break
    module.zero_grad(set_to_none=True)
    return statistics.median(times)


@dataclass(frozen=True)
class Kernel:
    key: str
    label: str
    build: Callable[[int], nn.Module]  # spatial_dims -> module
    #: How the time grows with N = the number of positions, as ``(exponent(dims), law in words)``.
    growth: Callable[[int], tuple[float, str]]


def _linear(dims: int) -> tuple[float, str]:
    return 1.0, "N"


def _quadratic(dims: int) -> tuple[float, str]:
    return 2.0, "N²"


def _criss_cross(dims: int) -> tuple[float, str]:
    # each of the N positions attends to its dims lines of N^(1/dims) positions
    return 1.0 + 1.0 / dims, "N·(H+W)" if dims == 2 else "N·(D+H+W)"


def _conv(dims: int) -> nn.Module:
    return (nn.Conv2d if dims == 2 else nn.Conv3d)(CHANNELS, CHANNELS, 3, padding=1)


def _joint(arrangement: str, shortcut: str) -> Callable[[int], nn.Module]:
    def build(dims: int) -> nn.Module:
        return create_block("joint", dims, CHANNELS, arrangement=arrangement, shortcut=shortcut, similarity="dot")

    return build


def _naive(dims: int) -> nn.Module:
    block = create_block("sa", dims, CHANNELS, similarity="dot")
    assert isinstance(block, SelfAttention)
    return NaiveDotAttention(block)


def kernels(quick: bool) -> list[Kernel]:
    """The rows of every size, the reference first."""
    return [
        Kernel(CONV, "3×3 convolution (reference)", _conv, _linear),
        Kernel(
            SA_DOT,
            "sa dot, associative θ·(φᵀg)/N",
            lambda dims: create_block("sa", dims, CHANNELS, similarity="dot"),
            _linear,
        ),
        Kernel(
            SA_SOFTMAX,
            "sa softmax, SDPA",
            lambda dims: create_block("sa", dims, CHANNELS, similarity="softmax"),
            _quadratic,
        ),
        Kernel(CCA, "cca (criss-cross)", lambda dims: create_block("cca", dims, CHANNELS), _criss_cross),
        Kernel(
            PAM, "pam, SDPA (query/key zero-padded to C)", lambda dims: create_block("pam", dims, CHANNELS), _quadratic
        ),
        Kernel(
            PAM_UNPADDED,
            "pam unpadded (C/8 query/key: math kernel, N×N)",
            lambda dims: UnpaddedPositionAttention(create_block("pam", dims, CHANNELS)),
            _quadratic,
        ),
        Kernel("cam", "cam (C×C affinity)", lambda dims: create_block("cam", dims, CHANNELS), _linear),
        *(
            Kernel(f"joint {a}/{s}", f"joint {a}/{s}", _joint(a, s), _linear)
            for a, s in (QUICK_JOINTS if quick else JOINTS)
        ),
        Kernel(NAIVE, "sa dot, naive N×N", _naive, _quadratic),
    ]


@dataclass(frozen=True)
class Size:
    dims: int
    side: int

    @property
    def n(self) -> int:
        return int(self.side**self.dims)

    @property
    def shape(self) -> tuple[int, ...]:
        return (1, CHANNELS, *(self.side,) * self.dims)

    @property
    def name(self) -> str:
        return f"{self.side}{'²' if self.dims == 2 else '³'}"


@dataclass(frozen=True)
class Result:
    seconds: float | None = None
    peak_bytes: int | None = None
    skipped: str = ""  # why it was not measured


def extrapolate(kernel: Kernel, size: Size, done: dict[Size, Result]) -> tuple[float, str] | None:
    """Expected seconds of ``kernel``'s pass at ``size`` from its largest measured size of the same
    dimensionality (else the measured size nearest in N), and a note saying how."""
    measured = [(s, r.seconds) for s, r in done.items() if r.seconds is not None]
    if not measured:
        return None
    same = [m for m in measured if m[0].dims == size.dims and m[0].n < size.n]
    base, seconds = max(same, key=lambda m: m[0].n) if same else min(measured, key=lambda m: abs(m[0].n - size.n))
    exponent, law = kernel.growth(size.dims)
    return seconds * (size.n / base.n) ** exponent, f"{law} from the {base.name} time"


def measure_kernel(kernel: Kernel, size: Size, done: dict[Size, Result], limit_s: float, repeats: int) -> Result:
    """Time and peak memory of ``kernel`` at ``size``, or why it is skipped (never the reference)."""
    if kernel.key in (NAIVE, PAM_UNPADDED) and 3 * size.n * size.n * 4 >= NAIVE_MEMORY_LIMIT:
        return Result(skipped=f"needs > {3 * size.n * size.n * 4 / 2**30:.0f} GiB")
    expected = extrapolate(kernel, size, done)
    if kernel.key != CONV and expected is not None and expected[0] > limit_s:
        return Result(skipped=f"about {expected[0]:.0f} s a pass expected ({expected[1]})")
    torch.manual_seed(0)
    module = kernel.build(size.dims)
    peak = measure_peak_memory(module, size.shape[1:])  # a full pass: it is the warm-up too
    seconds = time_fwd_bwd(module, size.shape, repeats, warm_up=False)
    return Result(seconds=seconds, peak_bytes=peak)


def run(quick: bool) -> tuple[list[Size], list[Kernel], dict[str, dict[Size, Result]]]:
    sizes = [Size(2, side) for side in (SIDES_2D[:1] if quick else SIDES_2D)]
    sizes += [Size(3, side) for side in (SIDES_3D[:1] if quick else SIDES_3D)]
    rows = kernels(quick)
    limit_s = QUICK_LIMIT_S if quick else LIMIT_S
    results: dict[str, dict[Size, Result]] = {kernel.key: {} for kernel in rows}
    start = time.perf_counter()
    for size in sizes:
        repeats = 1 if quick else (5 if size.n <= 64**2 else 3)
        for kernel in rows:
            if quick and kernel.key != CONV and time.perf_counter() - start > QUICK_DEADLINE_S:
                note = f"the quick run's {QUICK_DEADLINE_S:.0f} s were spent"
                results[kernel.key][size] = Result(skipped=note)
                continue
            results[kernel.key][size] = measure_kernel(kernel, size, results[kernel.key], limit_s, repeats)
    return sizes, rows, results


# ---------------------------------------------------------------- the report


def _ratio(result: Result, reference: Result, attribute: str) -> float | None:
    ours, ref = getattr(result, attribute), getattr(reference, attribute)
    return None if ours is None or not ref else float(ours / ref)


def _cell(ratio: float | None) -> str:
    return "skipped" if ratio is None else f"{ratio:.2f}"


def render(sizes: list[Size], rows: list[Kernel], results: dict[str, dict[Size, Result]], quick: bool) -> str:
    limit_s = QUICK_LIMIT_S if quick else LIMIT_S
    lines = [
        f"Each kernel is built through the block registry with C = {CHANNELS} channels and run at batch 1. "
        "Times are medians of forward+backward passes (after a warm-up; timing stops after "
        f"{TIMING_BUDGET_S:.0f} s, so a slower pass is timed once); peaks are the bytes CPU torch allocates "
        "during one forward+backward pass (profiler allocation events; the input and the parameters exist "
        "before it). Ratios are against a 3×3 convolution of the same width (C → C) measured in the same run. "
        "The joint variants use dot similarity. The naive N×N form runs only where its N×N buffers fit in "
        f"{NAIVE_MEMORY_LIMIT / 2**30:.0f} GiB; a kernel whose pass, extrapolated from its time at a smaller "
        f"size, would take over {limit_s:.0f} s is skipped, not estimated."
        + (
            f" This is a quick run: one timed pass, and kernels starting after {QUICK_DEADLINE_S:.0f} s are skipped."
            if quick
            else ""
        ),
        "",
    ]
    header = "| kernel | " + " | ".join(size.name for size in sizes) + " |"
    rule = "|---|" + "---|" * len(sizes)
    for title, attribute in (("Time", "seconds"), ("Peak memory", "peak_bytes")):
        lines += [f"### {title} × 3×3 convolution, forward+backward", "", header, rule]
        for kernel in rows:
            cells = [_cell(_ratio(results[kernel.key][s], results[CONV][s], attribute)) for s in sizes]
            lines.append(f"| {kernel.label} | " + " | ".join(cells) + " |")
        lines.append("")
    for size in sizes:
        lines += [
            f"### {size.name} (N = {size.n:,}), C = {CHANNELS}",
            "",
            "| kernel | time (s) | × 3×3 conv | peak (MiB) | × 3×3 conv memory |",
            "|---|---|---|---|---|",
        ]
        reference = results[CONV][size]
        for kernel in rows:
            result = results[kernel.key][size]
            if result.seconds is None or result.peak_bytes is None:
                lines.append(f"| {kernel.label} | skipped: {result.skipped} | | | |")
                continue
            lines.append(
                f"| {kernel.label} | {result.seconds:.4f} | {_cell(_ratio(result, reference, 'seconds'))} | "
                f"{result.peak_bytes / 2**20:.1f} | {_cell(_ratio(result, reference, 'peak_bytes'))} |"
            )
        lines.append("")
    return "\n".join(lines)


def _against_conv(results: dict[str, dict[Size, Result]], key: str, label: str, size: Size) -> Headline:
    result, conv = results[key][size], results[CONV][size]
    what = f"{label}, forward+backward time at {size.name}, C = {CHANNELS}"
    reference = f"3×3 conv: {conv.seconds:.4f} s" if conv.seconds is not None else "3×3 conv: skipped"
    if result.seconds is None:
        return Headline(area=AREA, what=what, figure=f"skipped: {result.skipped}", reference=reference)
    return Headline(
        area=AREA,
        what=what,
        figure=f"{result.seconds:.4f} s",
        reference=reference,
        ratio=_ratio(result, conv, "seconds"),
    )


def headlines(sizes: list[Size], rows: list[Kernel], results: dict[str, dict[Size, Result]]) -> list[Headline]:
    sizes_2d = [s for s in sizes if s.dims == 2]
    large, middle = sizes_2d[-1], sizes_2d[min(1, len(sizes_2d) - 1)]
    large_3d = [s for s in sizes if s.dims == 3][-1]
    joints = [k for k in rows if k.key.startswith("joint") and results[k.key][large].seconds is not None]
    out = [_against_conv(results, SA_DOT, "sa dot (associative)", large)]
    if joints:
        by_time = sorted(joints, key=lambda k: results[k.key][large].seconds or 0.0)
        out.append(_against_conv(results, by_time[0].key, f"fastest joint variant ({by_time[0].label})", large))
        out.append(_against_conv(results, by_time[-1].key, f"slowest joint variant ({by_time[-1].label})", large))
    out.append(_against_conv(results, CCA, "cca (criss-cross)", large))
    out.append(_against_conv(results, SA_SOFTMAX, "sa softmax (SDPA)", middle))
    ours, naive = results[SA_DOT][middle], results[NAIVE][middle]
    what = f"sa dot: associative form against the naive N×N form at {middle.name}, forward+backward time"
    if ours.seconds is not None and naive.seconds is not None:
        out.append(
            Headline(
                area=AREA,
                what=what,
                figure=f"{ours.seconds:.4f} s ({naive.seconds / ours.seconds:.0f}× faster)",
                reference=f"naive N×N: {naive.seconds:.4f} s",
                ratio=ours.seconds / naive.seconds,
            )
        )
    else:
        out.append(Headline(area=AREA, what=what, figure=f"skipped: {naive.skipped or ours.skipped}"))
    out.append(_against_conv(results, SA_DOT, "sa dot (associative), 3D", large_3d))
    out.append(_against_conv(results, PAM, "pam (SDPA, query/key zero-padded)", middle))
    pam, unpadded = results[PAM][middle], results[PAM_UNPADDED][middle]
    if pam.peak_bytes is not None and unpadded.peak_bytes is not None and unpadded.seconds and pam.seconds:
        out.append(
            Headline(
                area=AREA,
                what=f"pam: peak memory of a forward+backward pass at {middle.name}, C = {CHANNELS}",
                figure=f"{pam.peak_bytes / 2**20:.1f} MiB ({unpadded.seconds / pam.seconds:.1f}× faster)",
                reference=f"unpadded (math kernel): {unpadded.peak_bytes / 2**20:.0f} MiB, {unpadded.seconds:.3f} s",
                ratio=pam.peak_bytes / unpadded.peak_bytes,
            )
        )
    return out


def measure(quick: bool) -> Section:
    sizes, rows, results = run(quick)
    return Section(
        title="Attention kernels",
        body=render(sizes, rows, results, quick),
        headlines=headlines(sizes, rows, results),
        versions=(f"torch {torch.__version__}", f"{torch.get_num_threads()} torch threads"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return _report.standalone(measure, "kernels.py", argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
