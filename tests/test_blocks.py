"""Registry-driven checks: every registered block × spatial_dims {2, 3}."""

from __future__ import annotations

import itertools

import pytest
import torch

from search_spaces import SpecError, block_info, block_names, create_block

SIZES = {2: (2, 8, 6, 10), 3: (2, 8, 4, 6, 5)}


def all_option_combinations(name: str) -> list[dict]:
    options = block_info(name).options
    keys = sorted(options)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(options[k] for k in keys))]


CASES = [
    pytest.param(name, dims, opts, id=f"{name}-{dims}d-" + "-".join(str(v) for v in opts.values()))
    for name in block_names()
    for dims in (2, 3)
    for opts in all_option_combinations(name)
]


def test_registry_holds_the_founding_blocks() -> None:
    assert {"none", "pwa", "sa", "joint"} <= set(block_names())


@pytest.mark.parametrize(("name", "dims", "options"), CASES)
def test_output_shape_equals_input_shape(name: str, dims: int, options: dict) -> None:
    block = create_block(name, dims, 8, **options)
    x = torch.randn(SIZES[dims])
    assert block(x).shape == x.shape


@pytest.mark.parametrize(("name", "dims", "options"), CASES)
def test_backward_reaches_every_parameter(name: str, dims: int, options: dict) -> None:
    block = create_block(name, dims, 8, **options)
    x = torch.randn(SIZES[dims], requires_grad=True)
    block(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, param in block.named_parameters():
        assert param.grad is not None, f"{name}: no gradient reached {pname}"
        assert torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0, f"{name}: zero gradient at {pname}"


@pytest.mark.parametrize("name", block_names())
def test_bad_spatial_dims_and_channels_are_named(name: str) -> None:
    with pytest.raises(SpecError, match="spatial_dims"):
        create_block(name, 4, 8)
    with pytest.raises(SpecError, match="channels"):
        create_block(name, 2, 0)


@pytest.mark.parametrize("name", [n for n in block_names() if block_info(n).options])
def test_bad_option_value_is_named_with_the_accepted_values(name: str) -> None:
    option, allowed = next(iter(block_info(name).options.items()))
    with pytest.raises(SpecError) as info:
        create_block(name, 2, 8, **{option: "no-such-value"})
    assert option in str(info.value)
    assert repr(allowed[0]) in str(info.value)


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
