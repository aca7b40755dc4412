"""Every attention primitive against a naive float64 reference written from its formula.

The references follow RESEARCH.md (and the papers where it is silent). They read the module's
parameters by name (``module.get_parameter("...")``) and compute with plain functional ops
(``F.conv2d``/``F.conv3d``, ``einsum``, an explicit N×N softmax, explicit masks), never with the
module's submodules or helper methods, so a wrong formula in the module cannot also be in its
expected value. Parameters are set to random non-zero values first: with the zero-initialised
``γ`` of PAM, CAM and CCA every such check would pass vacuously.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F

from search_spaces import SpecError, create_block
from tests._largest import LargestOutput

SHAPES = {2: (7, 6), 3: (4, 5, 3)}  # uneven sizes: a swapped axis cannot go unnoticed
GATE_SHAPES = {2: (4, 3), 3: (2, 3, 2)}  # the coarser decoder feature (roughly half resolution)


# ---------------------------------------------------------------------------------------------
# helpers: random weights, parameters by name, plain convolutions
# ---------------------------------------------------------------------------------------------


def randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random non-trivial parameters: weights ~ N(0, 1.5²/fan_in), vectors ~ N(0, 0.5²), γ ∈ ±[0.5, 1.5]."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            if name.split(".")[-1] == "gamma":
                sign = torch.where(noise >= 0, 1.0, -1.0)
                value = sign * (0.5 + torch.rand(param.shape, generator=generator, dtype=torch.float64))
            elif param.ndim >= 2:
                value = noise * 1.5 / math.sqrt(param[0].numel())
            else:
                value = noise * 0.5
            param.copy_(value.to(param.dtype))
    return module


def build(name: str, dims: int, channels: int, seed: int = 0, **options: object) -> torch.nn.Module:
    return randomise(create_block(name, dims, channels, **options).double(), seed)


def weight(module: torch.nn.Module, name: str) -> torch.Tensor:
    return module.get_parameter(name)


def sample(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def convnd(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, dilation: int = 1) -> torch.Tensor:
    """A zero-padded 'same' convolution, ``F.conv2d`` or ``F.conv3d`` by the input's rank."""
    padding = dilation * (w.shape[-1] // 2)
    fn = F.conv2d if x.ndim == 4 else F.conv3d
    return fn(x, w, b, padding=padding, dilation=dilation)


def conv_of(
    module: torch.nn.Module, prefix: str, x: torch.Tensor, dilation: int = 1, bias: bool = True
) -> torch.Tensor:
    b = weight(module, f"{prefix}.bias") if bias else None
    return convnd(x, weight(module, f"{prefix}.weight"), b, dilation)


def pointwise(module: torch.nn.Module, prefix: str, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """A 1x1 convolution written as a channel matmul: ``(B, C, *s) → (B, O, *s)``."""
    w = weight(module, f"{prefix}.weight").flatten(1)
    out = torch.einsum("oc,bc...->bo...", w, x)
    if bias:
        out = out + weight(module, f"{prefix}.bias").reshape(1, -1, *([1] * (x.ndim - 2)))
    return out


def dense(module: torch.nn.Module, prefix: str, v: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution on a pooled vector, as a fully connected layer: ``(B, C) → (B, O)``."""
    return v @ weight(module, f"{prefix}.weight").flatten(1).T + weight(module, f"{prefix}.bias")


def gap(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(-1)


def gmp(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).max(-1).values


def per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B, C) → (B, C, 1, …)`` to broadcast over ``like``'s positions."""
    return v.reshape(*v.shape, *([1] * (like.ndim - 2)))


def sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t))


def softmax_rows(e: torch.Tensor) -> torch.Tensor:
    """An explicit softmax over the last axis (entries at -inf get weight 0)."""
    z = torch.exp(e - e.amax(dim=-1, keepdim=True))
    return z / z.sum(dim=-1, keepdim=True)


def assert_matches(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


def upsample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    mode = "bilinear" if t.ndim == 4 else "trilinear"
    return F.interpolate(t, size=like.shape[2:], mode=mode, align_corners=False)


# ---------------------------------------------------------------------------------------------
# the references
# ---------------------------------------------------------------------------------------------


def reference_se_map(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SE: ``σ(W₂ ReLU(W₁ GAP(x) + b₁) + b₂)``, one weight per channel."""
    hidden = torch.relu(dense(block, "fc.0", gap(x)))
    return per_channel(sigmoid(dense(block, "fc.2", hidden)), x)


def reference_cbam_channel_map(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CBAM channel (AF-Net eq. 2): ``σ(MLP(GAP x) + MLP(GMP x))``, one MLP for both."""

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return dense(block, "mlp.2", torch.relu(dense(block, "mlp.0", v)))

    return per_channel(sigmoid(mlp(gap(x)) + mlp(gmp(x))), x)


def reference_cbam_spatial_map(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CBAM spatial (AF-Net eq. 3): ``σ(conv_k([mean_c x; max_c x]))``, one channel."""
    pooled = torch.stack([x.mean(dim=1), x.max(dim=1).values], dim=1)
    return sigmoid(conv_of(block, "conv", pooled))


def reference_pam(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """PAM (DANet; MPU-Net eq. 8-9): ``s_ij = softmax_j(B_iᵀ C'_j)`` unscaled over all N positions,
    ``γ · Σ_j s_ij D_j + x``; B, C' to ``max(1, C // 8)`` channels, D to C."""
    bq = pointwise(block, "qkv.query", x).flatten(2)  # (B, C/8, N)
    ck = pointwise(block, "qkv.key", x).flatten(2)
    dv = pointwise(block, "qkv.value", x).flatten(2)  # (B, C, N)
    assert bq.shape[1] == ck.shape[1] == max(1, x.shape[1] // 8) and dv.shape[1] == x.shape[1]
    s = softmax_rows(torch.einsum("bci,bcj->bij", bq, ck))  # the N×N position affinity
    out = torch.einsum("bij,bcj->bci", s, dv).reshape(x.shape)
    return weight(block, "qkv.gamma") * out + x


def reference_cam(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CAM (DANet's reference code, RESEARCH.md): ``E = X Xᵀ / N``, ``A = softmax_row(max_row(E) − E)``,
    ``γ · (A X) + x`` with X the (C, N) flattened feature."""
    flat = x.flatten(2)
    n = flat.shape[-1]
    energy = torch.einsum("bcn,bdn->bcd", flat, flat) / n
    attention = softmax_rows(energy.amax(dim=-1, keepdim=True) - energy)
    return weight(block, "gamma") * torch.einsum("bcd,bdn->bcn", attention, flat).reshape(x.shape) + x


def reference_ag_map(block: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """AG (Oktay; MPU-Net eq. 10-12): ``σ(ψ(ReLU(W_x x + W_g g↑)))``, ``g↑`` the gating feature
    interpolated to x's grid (the projection and the interpolation commute: both linear, the
    interpolation weights sum to one)."""
    q = torch.relu(pointwise(block, "w_x", x, bias=False) + pointwise(block, "w_g", upsample(g, x)))
    return sigmoid(pointwise(block, "psi", q))


def reference_gff(block: torch.nn.Module, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """GFF (AF-Net eq. 5-6): ``σ(N(W GAP(F_H))) ⊙ conv3x3(F_L) + conv1x1(F_H)↑``; N normalises the
    pooled C-vector across its channels (mean 0, biased variance 1, eps 1e-5, then affine)."""
    w = dense(block, "weights.0", gap(high))  # (B, C)
    mean = w.mean(dim=1, keepdim=True)
    var = ((w - mean) ** 2).mean(dim=1, keepdim=True)
    normed = (w - mean) / torch.sqrt(var + 1e-5) * weight(block, "weights.1.weight") + weight(block, "weights.1.bias")
    return per_channel(sigmoid(normed), x) * conv_of(block, "low", x) + pointwise(block, "high", upsample(high, x))


def reference_mff(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MFF (AF-Net §3.2): branch k stacks k 3x3 convolutions with dilations 1..k (each + ReLU) and a
    1x1 convolution; ``conv1x1([x; branch₁; branch₂; branch₃])`` back to C channels."""
    branches = []
    for k in range(3):
        t = x
        for j in range(k + 1):
            t = torch.relu(conv_of(block, f"branches.{k}.{2 * j}", t, dilation=j + 1))
        branches.append(pointwise(block, f"branches.{k}.{2 * (k + 1)}", t))
    return pointwise(block, "fuse", torch.cat([x, *branches], dim=1))


def reference_fsam(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """FSAM (bilateral paper §3): ``c = Conv3x3(x)``, ``f = DConv(c)`` (3x3 dilation 2, ReLU),
    ``α = σ(FC(GAP f) + FC(GMP f))`` with one FC, output ``α ⊙ x + c``."""
    c = conv_of(block, "conv", x)
    f = torch.relu(conv_of(block, "dilated.0", c, dilation=2))
    alpha = sigmoid(dense(block, "fc", gap(f)) + dense(block, "fc", gmp(f)))
    return per_channel(alpha, x) * x + c


def criss_cross_mask(spatial: Sequence[int]) -> torch.Tensor:
    """``M[p, q]``: q lies on p's row, column (or depth line), i.e. differs in at most one coordinate.
    A set of positions, so p itself is on its path exactly once."""
    coords = torch.tensor(list(itertools.product(*(range(s) for s in spatial))))
    return (coords[:, None, :] != coords[None, :, :]).sum(-1) <= 1


def reference_cca_pass(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One CCNet criss-cross pass: ONE softmax over each position's whole criss-cross path,
    ``γ · Σ_{q ∈ path(p)} A_pq V_q + x``."""
    q = pointwise(block, "qkv.query", x).flatten(2)
    k = pointwise(block, "qkv.key", x).flatten(2)
    v = pointwise(block, "qkv.value", x).flatten(2)
    energy = torch.einsum("bci,bcj->bij", q, k)
    energy = energy.masked_fill(~criss_cross_mask(x.shape[2:]), float("-inf"))
    out = torch.einsum("bij,bcj->bci", softmax_rows(energy), v).reshape(x.shape)
    return weight(block, "qkv.gamma") * out + x


def reference_cca(block: torch.nn.Module, x: torch.Tensor, recurrence: int) -> torch.Tensor:
    """CCNet's recurrence: the same pass (shared weights) applied R times, ``y₁ = a(x)``, ``y₂ = a(y₁)``."""
    for _ in range(recurrence):
        x = reference_cca_pass(block, x)
    return x


def layer_norm(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = t.mean(dim=-1, keepdim=True)
    var = ((t - mean) ** 2).mean(dim=-1, keepdim=True)
    return (t - mean) / torch.sqrt(var + eps) * w + b


def gelu(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * t * (1.0 + torch.erf(t / math.sqrt(2.0)))


def swin_window_attention(
    prefix: str, block: torch.nn.Module, h: torch.Tensor, window: int, shifted: bool
) -> torch.Tensor:
    """Swin (shifted-)window multi-head self-attention on channels-last ``h`` (B, *s, C), from scratch.

    Conventions (MONAI's, after the Swin reference code): a window ``w_d = min(window, s_d)`` per
    axis, no shift along an axis where ``s_d ≤ window``, else shift ``window // 2``; the normed
    map is zero-padded at the end of each axis to a multiple of the window (padded tokens take part
    as keys and are cropped afterwards). Rather than rolling and partitioning, every padded token
    ``u`` gets its coordinate ``p = (u − shift) mod P`` in the cyclically shifted frame: tokens
    attend to each other iff ``p // w`` agrees on every axis (same window); in a shifted layer,
    tokens of one window that come from different regions (per axis: ``p < P−w``, ``p < P−shift``,
    else) get −100 added to their logit. Logits are ``q·k / √head_dim + bias_h[Δp]`` with
    ``Δp = p_i − p_j`` looked up in ``relative_position_bias_table`` (rows ordered by
    ``Δ`` over axes, row-major, each offset by ``window − 1``); heads ``gcd(C, 4)``.
    """
    batch, *spatial, channels = h.shape
    dims = len(spatial)
    eff = [min(window, s) for s in spatial]
    shift = [window // 2 if shifted and s > window else 0 for s in spatial]
    padded = [math.ceil(s / w) * w for s, w in zip(spatial, eff, strict=True)]
    pad = [0, 0] + [v for s, p in zip(reversed(spatial), reversed(padded), strict=True) for v in (0, p - s)]
    h = F.pad(h, pad)
    u = torch.tensor(list(itertools.product(*(range(p) for p in padded))))  # (Np, dims), row-major
    size = torch.tensor(padded)
    win = torch.tensor(eff)
    shifts = torch.tensor(shift)
    p = (u - shifts) % size
    same_window = ((p[:, None, :] // win) == (p[None, :, :] // win)).all(-1)
    region = torch.where(p < size - win, 0, torch.where(p < size - shifts, 1, 2))
    other_region = (region[:, None, :] != region[None, :, :]).any(-1) & any(shift)
    delta = p[:, None, :] - p[None, :, :] + (window - 1)  # in [0, 2·window − 2] within a window
    strides = [(2 * window - 1) ** (dims - 1 - d) for d in range(dims)]
    index = sum(delta[..., d] * strides[d] for d in range(dims)).clamp(0, (2 * window - 1) ** dims - 1)

    heads = math.gcd(channels, 4)
    head_dim = channels // heads
    tokens = h.reshape(batch, -1, channels)  # (B, Np, C), the same row-major order as u
    qkv = tokens @ weight(block, f"{prefix}.qkv.weight").T + weight(block, f"{prefix}.qkv.bias")
    q, k, v = (qkv[..., i * channels : (i + 1) * channels].reshape(batch, -1, heads, head_dim) for i in range(3))
    bias = weight(block, f"{prefix}.relative_position_bias_table")[index]  # (Np, Np, heads)
    logits = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(head_dim) + bias.permute(2, 0, 1)
    logits = logits + torch.where(other_region, -100.0, 0.0).to(logits.dtype)
    logits = logits.masked_fill(~same_window, float("-inf"))
    out = torch.einsum("bhij,bjhd->bihd", softmax_rows(logits), v).reshape(batch, -1, channels)
    out = out @ weight(block, f"{prefix}.proj.weight").T + weight(block, f"{prefix}.proj.bias")
    out = out.reshape(batch, *padded, channels)
    return out[(slice(None), *(slice(0, s) for s in spatial))]


def reference_isam(block: torch.nn.Module, x: torch.Tensor, window: int, depth: int) -> torch.Tensor:
    """ISAM (bilateral paper): ``depth`` Swin blocks (regular windows, then shifted, alternating), each
    ``t += WMSA(LN₁ t)``, ``t += fc₂(GELU(fc₁(LN₂ t)))``; then ``x + conv3x3(t)``."""
    t = x.movedim(1, -1)  # channels last
    for i in range(depth):
        pre = f"swin.blocks.{i}"
        h = layer_norm(t, weight(block, f"{pre}.norm1.weight"), weight(block, f"{pre}.norm1.bias"))
        t = t + swin_window_attention(f"{pre}.attn", block, h, window, shifted=i % 2 == 1)
        h = layer_norm(t, weight(block, f"{pre}.norm2.weight"), weight(block, f"{pre}.norm2.bias"))
        hidden = gelu(h @ weight(block, f"{pre}.mlp.linear1.weight").T + weight(block, f"{pre}.mlp.linear1.bias"))
        t = t + hidden @ weight(block, f"{pre}.mlp.linear2.weight").T + weight(block, f"{pre}.mlp.linear2.bias")
    return x + conv_of(block, "conv", t.movedim(-1, 1))


# ---------------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------------

DIMS = pytest.mark.parametrize("dims", [2, 3])


def features(dims: int, channels: int, seed: int = 1, batch: int = 2) -> torch.Tensor:
    return sample(batch, channels, *SHAPES[dims], seed=seed)


@DIMS
@pytest.mark.parametrize("reduction", [4, 16])
def test_se(dims: int, reduction: int) -> None:
    block = build("se", dims, 16, reduction=reduction)
    x = features(dims, 16)
    assert_matches(block(x), reference_se_map(block, x) * x)


@DIMS
@pytest.mark.parametrize("reduction", [4, 16])
def test_cbam_channel(dims: int, reduction: int) -> None:
    block = build("cbam_channel", dims, 16, reduction=reduction)
    x = features(dims, 16)
    assert_matches(block(x), reference_cbam_channel_map(block, x) * x)


@DIMS
@pytest.mark.parametrize("kernel_size", [7, 3])
def test_cbam_spatial(dims: int, kernel_size: int) -> None:
    block = build("cbam_spatial", dims, 8, kernel_size=kernel_size)
    x = features(dims, 8)
    assert_matches(block(x), reference_cbam_spatial_map(block, x) * x)


@DIMS
@pytest.mark.parametrize("channels", [16, 4])  # C // 8 = 2, and the max(1, ·) floor
def test_pam(dims: int, channels: int) -> None:
    block = build("pam", dims, channels)
    x = features(dims, channels)
    assert_matches(block(x), reference_pam(block, x))


@DIMS
def test_cam(dims: int) -> None:
    block = build("cam", dims, 8)
    x = features(dims, 8)
    assert_matches(block(x), reference_cam(block, x))


@DIMS
def test_ag(dims: int) -> None:
    block = build("ag", dims, 8, gate_channels=16)
    x, g = features(dims, 8), sample(2, 16, *GATE_SHAPES[dims], seed=2)
    assert_matches(block(x, g), reference_ag_map(block, x, g) * x)


@DIMS
def test_gff(dims: int) -> None:
    block = build("gff", dims, 8, gate_channels=16)
    x, high = features(dims, 8), sample(2, 16, *GATE_SHAPES[dims], seed=2)
    assert_matches(block(x, high), reference_gff(block, x, high))


@DIMS
def test_mff(dims: int) -> None:
    block = build("mff", dims, 4)
    x = features(dims, 4)
    assert_matches(block(x), reference_mff(block, x))


@DIMS
def test_fsam(dims: int) -> None:
    block = build("fsam", dims, 8)
    x = features(dims, 8)
    assert_matches(block(x), reference_fsam(block, x))


def cca_block(dims: int, channels: int, recurrence: int) -> torch.nn.Module:
    try:
        return build("cca", dims, channels, recurrence=recurrence)
    except (SpecError, TypeError) as error:
        if recurrence == 1:
            return build("cca", dims, channels)  # today's single pass
        pytest.skip(f"cca has no recurrence={recurrence} option yet: {error}")


@DIMS
@pytest.mark.parametrize("recurrence", [1, 2])
def test_cca(dims: int, recurrence: int) -> None:
    block = cca_block(dims, 16, recurrence)
    x = features(dims, 16)
    assert_matches(block(x), reference_cca(block, x, recurrence))


def test_cca_path_is_the_row_and_column_with_self_once() -> None:
    """The mask itself: on a 3x4 grid each position sees 3 + 4 − 1 = 6 positions; 3 + 4 + 5 − 2 in 3D."""
    assert criss_cross_mask((3, 4)).sum(-1).tolist() == [6] * 12
    assert criss_cross_mask((3, 4, 5)).sum(-1).tolist() == [10] * 60
    assert criss_cross_mask((3, 4))[5].reshape(3, 4).int().tolist() == [[0, 1, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]]


def isam_block(dims: int, channels: int, window: int, depth: int) -> torch.nn.Module:
    if depth == 2:
        return build("isam", dims, channels, window=window)
    try:
        return build("isam", dims, channels, window=window, depth=depth)
    except (SpecError, TypeError) as error:
        pytest.skip(f"isam has no depth={depth} option yet: {error}")


ISAM_CASES = [
    (2, (8, 12), 4),  # two by three windows, shifted by 2
    (2, (6, 10), 4),  # padded to 8 x 12 before partitioning
    (3, (8, 4, 6), 4),  # 3D: one axis no larger than the window (not shifted there), one padded
]


@pytest.mark.parametrize(("dims", "spatial", "window"), ISAM_CASES)
@pytest.mark.parametrize("depth", [2, 6])
def test_isam(dims: int, spatial: tuple[int, ...], window: int, depth: int) -> None:
    block = isam_block(dims, 8, window, depth)
    x = sample(2, 8, *spatial)
    assert_matches(block(x), reference_isam(block, x, window, depth))


@pytest.mark.parametrize("spatial", [(6, 12), (12, 6), (6, 6)], ids=["6x12", "12x6", "6x6"])
def test_isam_window_larger_than_the_map_keeps_relative_position_bias(spatial: tuple[int, int]) -> None:
    """A window larger than the feature map shrinks to it; the relative position bias of two tokens
    must still be the table entry of their offset."""
    block = build("isam", 2, 8, window=8)
    x = sample(1, 8, *spatial)
    assert_matches(block(x), reference_isam(block, x, 8, 2))


# ---------------------------------------------------------------------------------------------
# no N×N matrix, forward or backward
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("pam", {}),
        ("sa", {"similarity": "softmax"}),
        ("sa", {"similarity": "dot"}),
        ("cca", {}),
        ("axial", {"variant": "gated"}),
        ("isam", {"window": 8}),
    ],
    ids=["pam", "sa-softmax", "sa-dot", "cca", "axial", "isam"],
)
@pytest.mark.parametrize("spatial", [(64, 64), (16, 16, 16)], ids=["2d", "3d"])
def test_attention_never_materialises_nxn(name: str, options: dict[str, object], spatial: tuple[int, ...]) -> None:
    n = math.prod(spatial)  # 4096
    block = randomise(create_block(name, len(spatial), 32, **options), seed=0)
    x = torch.randn(1, 32, *spatial, requires_grad=True)
    with LargestOutput() as watch:
        block(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert watch.largest < n * n, f"{watch.op} produced {watch.largest} elements (N×N = {n * n})"
