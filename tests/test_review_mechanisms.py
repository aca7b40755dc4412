"""The review's other mechanisms (BAM, coordinate, ECA, SK, axial) and CCNet's recurrence, each
against a naive float64 reference written from its paper's formula.

The references read the module's parameters by name and compute with plain functional ops
(``F.conv2d``/``F.conv3d``, ``einsum``, explicit batch statistics and masks), never with the
module's submodules or helpers. Parameters are random first, so zero- or small-initialised
scales (CCA's ``γ``, axial's output projection) cannot make a check vacuous.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from search_spaces import AttentionSpec, create_block
from search_spaces.blocks import Composition
from tests._largest import LargestOutput
from trainers import count_flops

TOL = {"rtol": 1e-10, "atol": 1e-10}
SHAPES = {2: (9, 7), 3: (5, 6, 4)}  # uneven sizes: a swapped axis cannot go unnoticed
EPS = 1e-5  # torch's batch-norm epsilon


def build(name: str, dims: int, channels: int, seed: int = 0, **options: object) -> torch.nn.Module:
    """A float64 block in training mode with random N(0, 0.5²) parameters."""
    block = create_block(name, dims, channels, **options).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in block.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float64) * 0.5)
    return block


def sample(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def param(block: torch.nn.Module, name: str) -> torch.Tensor:
    return block.get_parameter(name)


def spatial(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


def conv(x: torch.Tensor, block: torch.nn.Module, name: str, dilation: int = 1) -> torch.Tensor:
    """Same-padding convolution with the weights ``name.weight`` (and ``name.bias`` if any)."""
    w = param(block, f"{name}.weight")
    bias = dict(block.named_parameters()).get(f"{name}.bias")
    padding = dilation * (w.shape[-1] // 2)
    functional = F.conv2d if x.ndim == 4 else F.conv3d
    return functional(x, w, bias, padding=padding, dilation=dilation)


def batch_norm(x: torch.Tensor, block: torch.nn.Module, name: str) -> torch.Tensor:
    """Training-mode batch norm: batch statistics over (B, *spatial), biased variance."""
    dims = (0, *spatial(x))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    w, b = param(block, f"{name}.weight").reshape(shape), param(block, f"{name}.bias").reshape(shape)
    return (x - mean) / torch.sqrt(var + EPS) * w + b


# ---------------------------------------------------------------------------------------------
# BAM: x + x ⊙ σ(Mc(x) + Ms(x))
# ---------------------------------------------------------------------------------------------


def reference_bam(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    pooled = x.mean(dim=spatial(x), keepdim=True)
    mc = conv(torch.relu(conv(pooled, block, "channel.0")), block, "channel.2")
    s = torch.relu(batch_norm(conv(x, block, "spatial.0"), block, "spatial.1"))
    s = torch.relu(batch_norm(conv(s, block, "spatial.3", dilation=4), block, "spatial.4"))
    s = torch.relu(batch_norm(conv(s, block, "spatial.6", dilation=4), block, "spatial.7"))
    ms = conv(s, block, "spatial.9")
    assert ms.shape[1] == 1 and mc.shape[2:] == (1,) * (x.ndim - 2)
    return x + x * torch.sigmoid(mc + ms)


@pytest.mark.parametrize("dims", [2, 3])
def test_bam_equals_its_formula(dims: int) -> None:
    block = build("bam", dims, 16, reduction=4)
    x = sample(2, 16, *SHAPES[dims])
    torch.testing.assert_close(block(x), reference_bam(block, x), **TOL)
    assert param(block, "spatial.3.weight").shape[:2] == (4, 4)  # C/r hidden channels


# ---------------------------------------------------------------------------------------------
# Coordinate attention: x ⊙ a_h ⊙ a_w (⊙ a_d)
# ---------------------------------------------------------------------------------------------


def reference_coordinate(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    w_reduce = param(block, "reduce.weight").flatten(1)  # (mip, C)
    if x.ndim == 4:
        lines = [x.mean(dim=3), x.mean(dim=2)]  # x_h: (B, C, H), x_w: (B, C, W)
    else:
        lines = [x.mean(dim=(3, 4)), x.mean(dim=(2, 4)), x.mean(dim=(2, 3))]  # x_d, x_h, x_w
    y = torch.einsum("mc,bcs->bms", w_reduce, torch.cat(lines, dim=2)) + param(block, "reduce.bias")[:, None]
    mean = y.mean(dim=(0, 2), keepdim=True)
    var = ((y - mean) ** 2).mean(dim=(0, 2), keepdim=True)
    y = (y - mean) / torch.sqrt(var + EPS) * param(block, "norm.weight")[:, None] + param(block, "norm.bias")[:, None]
    y = y * torch.clamp(y + 3, 0, 6) / 6  # h-swish
    gates = []
    for i, part in enumerate(y.split([line.shape[2] for line in lines], dim=2)):
        w, b = param(block, f"expand.{i}.weight").flatten(1), param(block, f"expand.{i}.bias")
        gates.append(torch.sigmoid(torch.einsum("cm,bms->bcs", w, part) + b[:, None]))
    if x.ndim == 4:
        return torch.einsum("bchw,bch,bcw->bchw", x, *gates)
    return torch.einsum("bcdhw,bcd,bch,bcw->bcdhw", x, *gates)


@pytest.mark.parametrize("dims", [2, 3])
def test_coordinate_attention_equals_its_formula(dims: int) -> None:
    block = build("coordinate", dims, 16, reduction=16)
    x = sample(2, 16, *SHAPES[dims])
    torch.testing.assert_close(block(x), reference_coordinate(block, x), **TOL)
    assert param(block, "reduce.weight").shape[0] == 8  # mip = max(8, C // r)


# ---------------------------------------------------------------------------------------------
# ECA: σ(conv1d_k(GAP(x))) ⊙ x
# ---------------------------------------------------------------------------------------------


def paper_kernel(channels: int) -> int:
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def test_eca_kernel_size_follows_the_paper() -> None:
    assert [paper_kernel(c) for c in (8, 16, 64, 128, 256, 512)] == [3, 3, 3, 5, 5, 5]
    for channels in (8, 16, 64, 128, 256, 512):
        block = create_block("eca", 2, channels)
        assert param(block, "conv.weight").shape == (1, 1, paper_kernel(channels))


@pytest.mark.parametrize(("dims", "channels"), [(2, 16), (3, 16), (2, 128), (3, 128)])
def test_eca_equals_its_formula(dims: int, channels: int) -> None:
    block = build("eca", dims, channels)
    x = sample(2, channels, *SHAPES[dims])
    w = param(block, "conv.weight").flatten()
    k = w.numel()
    y = F.pad(x.mean(dim=spatial(x)), (k // 2, k // 2))  # (B, C + k − 1), zero-padded channels
    z = sum(w[j] * y[:, j : j + channels] for j in range(k))  # cross-correlation along channels
    expected = x * torch.sigmoid(z).reshape(2, channels, *(1,) * dims)
    torch.testing.assert_close(block(x), expected, **TOL)


# ---------------------------------------------------------------------------------------------
# SK: Σ_m softmax_m(A_m z) ⊙ U_m
# ---------------------------------------------------------------------------------------------


def reference_sk(block: torch.nn.Module, x: torch.Tensor, branches: int) -> torch.Tensor:
    u = [
        torch.relu(batch_norm(conv(x, block, f"branches.{m}.0", dilation=m + 1), block, f"branches.{m}.1"))
        for m in range(branches)
    ]
    s = torch.stack(u).sum(dim=0).mean(dim=spatial(x))
    z = torch.relu(s @ param(block, "squeeze.0.weight").flatten(1).T + param(block, "squeeze.0.bias"))
    logits = z @ param(block, "select.weight").flatten(1).T + param(block, "select.bias")  # (B, M·C)
    a = torch.softmax(logits.reshape(x.shape[0], branches, x.shape[1]), dim=1)
    shape = (x.shape[0], x.shape[1]) + (1,) * (x.ndim - 2)
    return torch.stack([a[:, m].reshape(shape) * u[m] for m in range(branches)]).sum(dim=0)


@pytest.mark.parametrize("branches", [2, 3])
@pytest.mark.parametrize("dims", [2, 3])
def test_selective_kernel_equals_its_formula(dims: int, branches: int) -> None:
    block = build("sk", dims, 8, branches=branches)
    x = sample(2, 8, *SHAPES[dims])
    torch.testing.assert_close(block(x), reference_sk(block, x, branches), **TOL)
    assert param(block, "squeeze.0.weight").shape[0] == 8  # d = max(C/16, 32), capped at C
    assert param(create_block("sk", 2, 64), "squeeze.0.weight").shape[0] == 32


# ---------------------------------------------------------------------------------------------
# Axial attention: along H, then W, then D, with relative position terms
# ---------------------------------------------------------------------------------------------

MAX_DISTANCE = 32


def reference_axis(block: torch.nn.Module, x: torch.Tensor, i: int, axis: int, gated: bool) -> torch.Tensor:
    """Multi-head attention of every position with the positions on its line along ``axis``."""
    channels, heads = x.shape[1], math.gcd(x.shape[1], 4)
    d = channels // heads
    qkv = conv(x, block, f"axes.{i}.qkv")
    q, k, v = (t.movedim(axis, -1).unflatten(1, (heads, d)) for t in qkv.split(channels, dim=1))
    length = x.shape[axis]
    index = torch.tensor(
        [[min(max(p - o, -MAX_DISTANCE), MAX_DISTANCE) + MAX_DISTANCE for p in range(length)] for o in range(length)]
    )
    rq, rk = param(block, f"axes.{i}.rel_query")[index], param(block, f"axes.{i}.rel_key")[index]  # (L, L, d)
    gq = param(block, f"axes.{i}.gate_query") if gated else 1.0
    gk = param(block, f"axes.{i}.gate_key") if gated else 1.0
    logits = (
        torch.einsum("bhd...o,bhd...p->bh...op", q, k)
        + gq * torch.einsum("bhd...o,opd->bh...op", q, rq)
        + gk * torch.einsum("bhd...p,opd->bh...op", k, rk)
    ) / math.sqrt(d)
    out = torch.einsum("bh...op,bhd...p->bhd...o", torch.softmax(logits, dim=-1), v)
    return out.flatten(1, 2).movedim(-1, axis)


def reference_axial(block: torch.nn.Module, x: torch.Tensor, gated: bool) -> torch.Tensor:
    y = x
    for i, axis in enumerate([2, 3] if x.ndim == 4 else [3, 4, 2]):  # H, W, then D
        y = reference_axis(block, y, i, axis, gated)
    return x + conv(y, block, "out")


@pytest.mark.parametrize("variant", ["axial", "gated"])
@pytest.mark.parametrize(("dims", "shape"), [(2, SHAPES[2]), (3, SHAPES[3]), (2, (37, 3))])  # 37 > ±32: clipped
def test_axial_attention_equals_its_formula(dims: int, shape: tuple[int, ...], variant: str) -> None:
    block = build("axial", dims, 8, variant=variant)
    x = sample(2, 8, *shape)
    torch.testing.assert_close(block(x), reference_axial(block, x, variant == "gated"), **TOL)


def test_gated_axial_gates_start_small_and_the_output_projection_near_zero() -> None:
    block = create_block("axial", 2, 8, variant="gated")
    gates = [p for n, p in block.named_parameters() if "gate_" in n]
    assert len(gates) == 4 and all(float(g.detach()) == pytest.approx(0.1) for g in gates)
    assert param(block, "out.weight").abs().max() < 0.1
    assert not [n for n, _ in create_block("axial", 2, 8).named_parameters() if "gate_" in n]


def test_axial_attention_never_builds_an_nxn_matrix() -> None:
    """At 64×64 (N = 4096) the largest tensor, forward and backward, is the (L, L) bias per line and head."""
    block = create_block("axial", 2, 16, variant="gated")
    x = torch.randn(1, 16, 64, 64, requires_grad=True)
    n = 64 * 64
    with LargestOutput() as watch:
        block(x).square().sum().backward()
    assert watch.largest <= 4 * n * 64 < n * n  # heads × N × L


# ---------------------------------------------------------------------------------------------
# CCA with CCNet's recurrence: the same criss-cross attention applied R times
# ---------------------------------------------------------------------------------------------


def reference_criss_cross(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One pass ``x + γ Σ A V``: one softmax over the lines through each position, itself once."""
    q, k, v = (conv(x, block, f"qkv.{name}") for name in ("query", "key", "value"))
    axes = spatial(x)
    energies, values = [], []
    for position, axis in enumerate(axes):
        qa, ka, va = (t.movedim(axis, -1) for t in (q, k, v))
        e = torch.einsum("bc...i,bc...j->b...ij", qa, ka)
        if position > 0:
            e = e - torch.diag(torch.full((e.shape[-1],), math.inf, dtype=e.dtype))
        energies.append(e)
        values.append(va)
    lengths = [e.shape[-1] for e in energies]
    # Each energy is (B, *others, L_i, L_i) with the query on axis -2: bring all to (B, *spatial, L_j).
    moved = [e.movedim(-2, axis - 1) for e, axis in zip(energies, axes, strict=True)]
    weights = torch.softmax(torch.cat(moved, dim=-1), dim=-1).split(lengths, dim=-1)
    out = torch.zeros_like(v)
    for w, va, axis in zip(weights, values, axes, strict=True):
        out = out + torch.einsum("b...ij,bc...j->bc...i", w.movedim(axis - 1, -2), va).movedim(-1, axis)
    return x + param(block, "qkv.gamma") * out


@pytest.mark.parametrize("recurrence", [1, 2])
@pytest.mark.parametrize("dims", [2, 3])
def test_cca_recurrence_applies_the_same_attention_r_times(dims: int, recurrence: int) -> None:
    block = build("cca", dims, 8, recurrence=recurrence)
    x = sample(2, 8, *SHAPES[dims])
    expected = x
    for _ in range(recurrence):
        expected = reference_criss_cross(block, expected)
    torch.testing.assert_close(block(x), expected, **TOL)


def test_cca_with_two_recurrences_reaches_every_position() -> None:
    """R = 1 sees only the criss-cross lines of a position; R = 2 sees the whole map."""
    for recurrence, reaches_all in ((1, False), (2, True)):
        block = build("cca", 2, 8, recurrence=recurrence)
        x = sample(1, 8, 6, 5).requires_grad_(True)
        block(x)[0, :, 0, 0].sum().backward()
        assert x.grad is not None
        reached = x.grad.abs().sum(dim=1)[0] > 0
        assert bool(reached.all()) is reaches_all
        assert bool(reached[0].all() and reached[:, 0].all())


# ---------------------------------------------------------------------------------------------
# ISAM depth and the bilateral preset
# ---------------------------------------------------------------------------------------------


def test_isam_depth_stacks_regular_and_shifted_window_blocks() -> None:
    for depth in (2, 6):
        block = create_block("isam", 2, 8, depth=depth)
        shifts = [tuple(b.shift_size) for b in block.swin.blocks]  # type: ignore[union-attr]
        assert shifts == [(0, 0), (2, 2)] * (depth // 2)
    x = torch.randn(1, 8, 8, 8)
    assert create_block("isam", 3, 8, depth=6)(torch.randn(1, 8, 4, 8, 8)).shape == (1, 8, 4, 8, 8)
    assert create_block("isam", 2, 8, depth=6)(x).shape == x.shape


def test_bilateral_preset_is_isam_then_fsam_in_series() -> None:
    preset = AttentionSpec("bilateral", (("depth", 6),), (("skip", (0,)),))
    spelled = AttentionSpec(
        "compose",
        (("a", "isam"), ("b", "fsam"), ("arrangement", "a_first"), ("a.depth", 6)),
        (("skip", (0,)),),
    )
    assert preset == spelled
    block = create_block("bilateral", 2, 8).double()
    assert isinstance(block, Composition)
    x = sample(1, 8, 8, 8)
    torch.testing.assert_close(block(x), block.b(block.a(x)), **TOL)


# ---------------------------------------------------------------------------------------------
# FLOPs: every convolution and attention product of the new blocks is counted
# ---------------------------------------------------------------------------------------------


def conv_flops(positions: int, c_in: int, c_out: int, kernel: int = 1) -> int:
    return 2 * positions * c_in * c_out * kernel


def hand_flops(name: str, dims: int, channels: int, size: tuple[int, ...], options: dict[str, int | str]) -> int:
    n, k3, c = math.prod(size), 3**dims, channels
    if name == "eca":
        return 2 * c * paper_kernel(c)
    if name == "bam":
        h = max(4, c // 16)
        return conv_flops(1, c, h) * 2 + conv_flops(n, c, h) + 2 * conv_flops(n, h, h, k3) + conv_flops(n, h, 1)
    if name == "coordinate":
        mip, lines = max(8, c // 32), sum(size)
        return conv_flops(lines, c, mip) + conv_flops(lines, mip, c)
    if name == "sk":
        m, d = int(options.get("branches", 2)), min(c, 32)
        return m * conv_flops(n, c, c, k3) + conv_flops(1, c, d) + conv_flops(1, d, m * c)
    if name == "axial":
        # per axis: q/k/v projections, q·r^q and k·r^k (N·L·C each), q·k and a·v (N·L·C each)
        per_axis = sum(conv_flops(n, c, 3 * c) + 4 * 2 * n * length * c for length in size)
        return per_axis + conv_flops(n, c, c)
    inner = c // 8  # cca: q, k, v projections and, per pass, energies and aggregation on every line
    lines = sum(2 * n * length * (inner + c) for length in size)
    return int(options["recurrence"]) * (conv_flops(n, c, 2 * inner) + conv_flops(n, c, c) + lines)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("eca", {}),
        ("bam", {}),
        ("coordinate", {}),
        ("sk", {}),
        ("sk", {"branches": 3}),
        ("axial", {}),
        ("axial", {"variant": "gated"}),
        ("cca", {"recurrence": 1}),
        ("cca", {"recurrence": 2}),
    ],
)
@pytest.mark.parametrize("dims", [2, 3])
def test_flops_count_every_product_of_the_block(name: str, options: dict[str, int | str], dims: int) -> None:
    size = (12, 10) if dims == 2 else (6, 5, 4)
    block = create_block(name, dims, 16, **options)
    assert count_flops(block, (16, *size)) == pytest.approx(hand_flops(name, dims, 16, size, options), rel=1e-6)
