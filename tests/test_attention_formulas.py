"""The attention maths pinned down in RESEARCH.md, checked on tiny tensors with hand-set weights."""

from __future__ import annotations

import itertools

import pytest
import torch

from search_spaces import AttentionSpec, create_block
from search_spaces.blocks import ARRANGEMENTS, SHORTCUTS, Composition, SelfAttentionResponse
from tests.test_block_references import (
    assert_matches,
    reference_cam,
    reference_cbam_channel_map,
    reference_cbam_spatial_map,
    reference_pam,
)


def set_weights(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.5)


def reference_m(block: Composition, x: torch.Tensor) -> torch.Tensor:
    """M(x) = σ(conv3x3(x)), written out with the block's own conv weights."""
    conv = block.a.map.conv
    return torch.sigmoid(torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1))


def reference_s(block: Composition, x: torch.Tensor) -> torch.Tensor:
    """S(x) = W(Σ_j θ_iᵀφ_j g_j / N), the naive N×N form (dot similarity)."""
    sa = block.b.attention

    def one_by_one(conv: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], t) + conv.bias[None, :, None, None]

    b, _, h, w = x.shape
    theta = one_by_one(sa.theta, x).flatten(2)
    phi = one_by_one(sa.phi, x).flatten(2)
    g = one_by_one(sa.g, x).flatten(2)
    n = h * w
    f = torch.einsum("bci,bcj->bij", theta, phi) / n
    y = torch.einsum("bij,bcj->bci", f, g).reshape(b, -1, h, w)
    return one_by_one(sa.out, y)


FORMULAS = {
    ("parallel", "inside"): lambda x, m, s: m(x) * (x + s(x)),
    ("parallel", "outside"): lambda x, m, s: x + m(x) * s(x),
    ("parallel", "separate"): lambda x, m, s: (1 + m(x)) * (x + s(x)),
    ("sa_first", "inside"): lambda x, m, s: m(x + s(x)) * (x + s(x)),
    ("sa_first", "outside"): lambda x, m, s: x + m(s(x)) * s(x),
    ("sa_first", "separate"): lambda x, m, s: (1 + m(x + s(x))) * (x + s(x)),
    ("pwa_first", "inside"): lambda x, m, s: m(x) * x + s(m(x) * x),
    ("pwa_first", "outside"): lambda x, m, s: x + s(m(x) * x),
    ("pwa_first", "separate"): lambda x, m, s: (1 + m(x)) * x + s((1 + m(x)) * x),
}


def make_joint(arrangement: str, shortcut: str) -> Composition:
    block = create_block("joint", 2, 4, arrangement=arrangement, shortcut=shortcut, similarity="dot").double()
    assert isinstance(block, Composition)
    set_weights(block, seed=7)
    return block


@pytest.mark.parametrize(("arrangement", "shortcut"), list(itertools.product(ARRANGEMENTS, SHORTCUTS)))
def test_each_joint_variant_equals_its_formula(arrangement: str, shortcut: str) -> None:
    block = make_joint(arrangement, shortcut)
    x = torch.randn(2, 4, 5, 3, dtype=torch.float64)
    expected = FORMULAS[(arrangement, shortcut)](x, lambda t: reference_m(block, t), lambda t: reference_s(block, t))
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)


def test_the_nine_variants_are_pairwise_different_functions() -> None:
    x = torch.randn(2, 4, 5, 3, dtype=torch.float64)
    outputs = {key: make_joint(*key)(x) for key in itertools.product(ARRANGEMENTS, SHORTCUTS)}
    assert len(outputs) == 9
    for (ka, a), (kb, b) in itertools.combinations(outputs.items(), 2):
        assert (a - b).abs().max() > 1e-3, f"{ka} and {kb} compute the same function"


@pytest.mark.parametrize("dims", [2, 3])
def test_associative_dot_form_equals_naive_nxn_form(dims: int) -> None:
    torch.manual_seed(3)
    block = SelfAttentionResponse(dims, 6, similarity="dot").double()
    set_weights(block, seed=11)
    x = torch.randn((2, 6, 7, 5) if dims == 2 else (2, 6, 3, 4, 5), dtype=torch.float64)
    theta, phi, g = (conv(x).flatten(2) for conv in (block.theta, block.phi, block.g))
    n = theta.shape[-1]
    similarity = torch.einsum("bci,bcj->bij", theta, phi) / n  # the N×N matrix
    naive = torch.einsum("bij,bcj->bci", similarity, g).reshape(2, -1, *x.shape[2:])
    expected = block.out(naive)
    assert (block(x) - expected).abs().max().item() < 1e-10


def test_softmax_form_equals_embedded_gaussian() -> None:
    block = SelfAttentionResponse(2, 6, similarity="softmax").double()
    set_weights(block, seed=5)
    x = torch.randn(1, 6, 4, 5, dtype=torch.float64)
    theta, phi, g = (conv(x).flatten(2) for conv in (block.theta, block.phi, block.g))
    weights = torch.softmax(torch.einsum("bci,bcj->bij", theta, phi), dim=-1)  # unscaled, over j
    expected = block.out(torch.einsum("bij,bcj->bci", weights, g).reshape(1, -1, 4, 5))
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-10)


def test_dot_form_never_builds_an_nxn_matrix() -> None:
    """At N = 128² an N×N float matrix is 1 GiB; the associative form must stay tiny."""
    block = SelfAttentionResponse(2, 8, similarity="dot")
    x = torch.randn(1, 8, 128, 128)
    largest = 0

    class Watch(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            nonlocal largest
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                largest = max(largest, out.numel())
            return out

    with torch.no_grad(), Watch():
        block(x)
    assert largest <= 8 * 128 * 128  # never more than the feature map itself


def test_joint_preset_is_the_spelled_out_composition() -> None:
    for ja, generic in (("parallel", "parallel"), ("sa_first", "b_first"), ("pwa_first", "a_first")):
        preset = AttentionSpec("joint", (("arrangement", ja), ("shortcut", "outside")), (("skip", (0,)),))
        spelled = AttentionSpec(
            "compose",
            (("a", "pwa"), ("b", "sa"), ("arrangement", generic), ("shortcut", "outside")),
            (("skip", (0,)),),
        )
        assert preset == spelled
        assert preset.to_dict() == spelled.to_dict()


def test_cbam_preset_is_channel_then_spatial_in_series() -> None:
    """CBAM = ``M_s(z) ⊙ z`` with ``z = M_c(x) ⊙ x``, both maps from their formulas (AF-Net eq. 2-3)."""
    block = create_block("cbam", 2, 8, reduction=4).double()
    assert isinstance(block, Composition)
    set_weights(block, seed=3)
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    z = reference_cbam_channel_map(block.a, x) * x
    assert_matches(block(x), reference_cbam_spatial_map(block.b, z) * z)
    spelled = AttentionSpec(
        "compose",
        (("a", "cbam_channel"), ("b", "cbam_spatial"), ("arrangement", "a_first"), ("a.reduction", 4)),
        (("skip", (0,)),),
    )
    preset = AttentionSpec("cbam", (("reduction", 4),), (("skip", (0,)),))
    assert preset == spelled


def test_da_block_preset_is_channel_plus_spatial_in_parallel() -> None:
    """DA-block = ``M_c(x) ⊙ x + M_s(x) ⊙ x``, both maps from their formulas."""
    block = create_block("da_block", 3, 8).double()
    assert isinstance(block, Composition)
    set_weights(block, seed=4)
    x = torch.randn(1, 8, 4, 3, 5, dtype=torch.float64)
    expected = reference_cbam_channel_map(block.a, x) * x + reference_cbam_spatial_map(block.b, x) * x
    assert_matches(block(x), expected)
    preset = AttentionSpec("da_block", (), (("encoder", (1,)),))
    spelled = AttentionSpec(
        "compose", (("a", "cbam_channel"), ("b", "cbam_spatial"), ("shortcut", "none")), (("encoder", (1,)),)
    )
    assert preset == spelled


@pytest.mark.parametrize("arrangement", ["a_first", "b_first"])
def test_serial_none_is_folded_into_inside(arrangement: str) -> None:
    def spec(shortcut: str) -> AttentionSpec:
        return AttentionSpec(
            "compose",
            (("a", "se"), ("b", "cca"), ("arrangement", arrangement), ("shortcut", shortcut)),
            (("skip", (0,)),),
        )

    assert spec("none") == spec("inside")
    assert spec("none").option("shortcut") == "inside"


def test_generic_rules_on_two_residual_members() -> None:
    """A = cam, B = pam (both residual): the table's rules with P° = P − id, the members computed by
    their references (DANet's CAM and PAM formulas), not by the modules."""
    x = torch.randn(1, 8, 4, 5, dtype=torch.float64)
    outputs = {}
    for arrangement, shortcut in itertools.product(("parallel", "a_first", "b_first"), ("inside", "separate", "none")):
        block = create_block("compose", 2, 8, a="cam", b="pam", arrangement=arrangement, shortcut=shortcut).double()
        assert isinstance(block, Composition)
        set_weights(block, seed=9)

        def a(t: torch.Tensor, block: Composition = block) -> torch.Tensor:
            return reference_cam(block.a, t)

        def b(t: torch.Tensor, block: Composition = block) -> torch.Tensor:
            return reference_pam(block.b, t)

        if arrangement == "a_first":
            expected = b(x + a(x)) if shortcut == "separate" else b(a(x))
        elif arrangement == "b_first":
            expected = b(x) + a(b(x)) if shortcut == "separate" else a(b(x))
        elif shortcut == "inside":  # A_x(B(x)) = B(x) + A°(x)
            expected = b(x) + (a(x) - x)
        elif shortcut == "separate":  # B(x) + A_x(B(x))
            expected = 2 * b(x) + (a(x) - x)
        else:
            expected = a(x) + b(x)
        outputs[(arrangement, shortcut)] = block(x)
        assert_matches(outputs[(arrangement, shortcut)], expected)
    # serial none folds into inside; otherwise the rules give different functions
    assert len({round(o.sum().item(), 9) for o in outputs.values()}) == 7
