"""Registry-driven checks: every registered block (and preset) × spatial_dims {2, 3}."""

from __future__ import annotations

import itertools

import pytest
import torch

from search_spaces import AttentionSpec, SpecError, block_info, block_names, create_block
from search_spaces.blocks import Mechanism, composable_blocks

SIZES = {2: (2, 8, 8, 12), 3: (2, 8, 4, 6, 8)}
GATE_CHANNELS = 16
PAIRS = (("pwa", "sa"), ("ag", "cca"), ("se", "isam"), ("gff", "pam"))


def option_sets(name: str) -> list[dict]:
    if name == "compose":
        return [
            {"a": a, "b": b, "arrangement": arrangement, "shortcut": shortcut}
            for (a, b), arrangement, shortcut in itertools.product(
                PAIRS, ("parallel", "a_first", "b_first"), ("inside", "outside", "separate", "none")
            )
        ]
    options = block_info(name).options
    keys = sorted(options)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(options[k] for k in keys))]


def uses_gate(name: str, options: dict) -> bool:
    if name == "compose":
        return any(block_info(options[role]).needs_gate for role in ("a", "b"))
    return block_info(name).needs_gate


CASES = [
    pytest.param(name, dims, opts, id=f"{name}-{dims}d-" + "-".join(str(v) for v in opts.values()))
    for name in block_names()
    for dims in (2, 3)
    for opts in option_sets(name)
]


def build(name: str, dims: int, options: dict) -> tuple[torch.nn.Module, torch.Tensor | None]:
    if uses_gate(name, options):
        block = create_block(name, dims, 8, gate_channels=GATE_CHANNELS, **options)
        coarse = tuple(s // 2 for s in SIZES[dims][2:])
        return block, torch.randn(2, GATE_CHANNELS, *coarse)
    return create_block(name, dims, 8, **options), None


def test_registry_holds_every_mechanism_of_the_papers() -> None:
    expected = {
        "none",
        "pwa",
        "sa",
        "se",
        "cbam_channel",
        "cbam_spatial",
        "pam",
        "cam",
        "ag",
        "mff",
        "gff",
        "fsam",
        "isam",
        "cca",
        "compose",
        "joint",
        "cbam",
        "da_block",
        "bam",
        "coordinate",
        "eca",
        "sk",
        "axial",
        "bilateral",
    }
    assert expected <= set(block_names())
    assert {"none", "compose", "joint", "cbam", "da_block", "bilateral"}.isdisjoint(composable_blocks())


@pytest.mark.parametrize(("name", "dims", "options"), CASES)
def test_output_shape_equals_input_shape(name: str, dims: int, options: dict) -> None:
    block, gate = build(name, dims, options)
    x = torch.randn(SIZES[dims])
    out = block(x, gate) if gate is not None else block(x)
    assert out.shape == x.shape


@pytest.mark.parametrize(("name", "dims", "options"), CASES)
def test_backward_reaches_every_parameter(name: str, dims: int, options: dict) -> None:
    block, gate = build(name, dims, options)
    reached: set[str] = set()
    for draw in range(5):  # a ReLU unit can be dead for one draw; a disconnected branch is dead for all
        torch.manual_seed(draw)
        # Zero-initialised scales (γ of PAM/CAM/CCA) would hide a disconnected branch: randomise first.
        with torch.no_grad():
            for param in block.parameters():
                param.normal_(0, 0.3)
        block.zero_grad(set_to_none=True)
        x = torch.randn(SIZES[dims], requires_grad=True)
        out = block(x, gate) if gate is not None else block(x)
        out.square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        for pname, param in block.named_parameters():
            assert param.grad is not None, f"{name}: no gradient reached {pname}"
            assert torch.isfinite(param.grad).all()
            if param.grad.abs().sum() > 0:
                reached.add(pname)
    missing = {pname for pname, _ in block.named_parameters()} - reached
    assert not missing, f"{name}: zero gradient at {sorted(missing)}"


@pytest.mark.parametrize("name", [n for n in block_names() if n != "compose"])
def test_bad_spatial_dims_and_channels_are_named(name: str) -> None:
    extra = {"gate_channels": 8} if block_info(name).needs_gate else {}
    with pytest.raises(SpecError, match="spatial_dims"):
        create_block(name, 4, 8, **extra)
    with pytest.raises(SpecError, match="channels"):
        create_block(name, 2, 0, **extra)


@pytest.mark.parametrize("name", [n for n in block_names() if block_info(n).options])
def test_bad_option_value_is_named_with_the_accepted_values(name: str) -> None:
    option, allowed = next(iter(block_info(name).options.items()))
    with pytest.raises(SpecError) as info:
        create_block(name, 2, 8, **{option: "no-such-value"})
    assert option in str(info.value)
    assert repr(allowed[0]) in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"a": "pwa"}, r"\.b: a composition needs two primitives"),
        ({"a": "pwa", "b": "joint"}, "'joint' is not valid; expected one of 'ag'"),
        ({"a": "pwa", "b": "cc"}, "did you mean 'cca'"),
        ({"a": "none", "b": "sa"}, "'none' is not valid"),
        ({"a": "pwa", "b": "sa", "arrangement": "serial"}, "arrangement"),
        ({"a": "pwa", "b": "sa", "shortcut": "skip"}, "shortcut"),
        ({"a": "pwa", "b": "sa", "b.similarity": "cosine"}, "b.similarity"),
        ({"a": "pwa", "b": "sa", "a.similarity": "dot"}, "no option 'similarity'"),
        ({"a": "pwa", "b": "sa", "weight": 2}, "no option 'weight'"),
    ],
)
def test_bad_composition_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        create_block("compose", 2, 8, **options)


@pytest.mark.parametrize("name", ["ag", "gff"])
def test_gating_blocks_refuse_non_skip_placements(name: str) -> None:
    for placement in ("encoder", "bottleneck", "decoder"):
        with pytest.raises(SpecError, match=rf"'{placement}' is not valid for block '{name}'.*gating signal"):
            AttentionSpec(name, (), ((placement, (0,)),))
    assert AttentionSpec(name, (), (("skip", (0,)),)).levels("skip") == (0,)
    with pytest.raises(SpecError, match="gating signal"):
        AttentionSpec("compose", (("a", "se"), ("b", name)), (("decoder", (0,)),))
    with pytest.raises(ValueError, match="gating signal"):
        block = create_block(name, 2, 8, gate_channels=8)
        block(torch.randn(1, 8, 4, 4))


def test_every_primitive_is_a_mechanism_with_a_declared_kind() -> None:
    for name in composable_blocks():
        block, _ = build(name, 2, {})
        assert isinstance(block, Mechanism)
        assert block_info(name).kind in ("gate", "residual", "transform")


def test_unknown_option_and_unknown_block_are_named() -> None:
    with pytest.raises(SpecError, match="no option 'heads'"):
        create_block("sa", 2, 8, heads=4)
    with pytest.raises(SpecError, match="did you mean 'pwa'"):
        create_block("pws", 2, 8)


def test_duplicate_registration_raises() -> None:
    from search_spaces import register_block

    with pytest.raises(ValueError, match="already registered"):

        @register_block("sa")
        class Again(torch.nn.Module):
            pass
