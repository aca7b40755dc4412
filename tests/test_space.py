"""Declared spaces: the widest space builds everywhere, counts are exact, placements land where declared."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from search_spaces import ArchSpec, AttentionSpec, SampleContext, SearchSpace, build_model, sample_spec
from search_spaces._space import count_architectures


class RandomTrial:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


class PathTrial:
    """Follows a fixed list of choice indices and records how many choices each step had."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.step, self.widths = path, 0, []

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        index = self.path[self.step] if self.step < len(self.path) else 0
        self.widths.append(len(choices))
        self.step += 1
        return list(choices)[index]


def enumerate_specs(space: SearchSpace) -> set[str]:
    """Every spec the sampler can produce, by depth-first walk over its choices (hashes)."""
    hashes: set[str] = set()
    stack: list[list[int]] = [[]]
    while stack:
        path = stack.pop()
        trial = PathTrial(path)
        spec = sample_spec(trial, space)
        full = path + [0] * (trial.step - len(path))
        hashes.add(spec.spec_hash())
        for position in range(len(path), trial.step):  # branch on every choice after the prefix
            for index in range(1, trial.widths[position]):
                stack.append([*full[:position], index])
    return hashes


def test_demo_like_space_count_by_hand() -> None:
    # blocks none/pwa/sa/joint at the skips of a 3- or 4-level U-Net, widths 8 or 16:
    # mechanisms: pwa 1 + sa 2 + joint 3x3x2 = 21; level subsets: 3 (depth 3), 7 (depth 4)
    # (1 + 21*3 + 1 + 21*7) * 2 widths = 424
    assert count_architectures(SearchSpace()) == 424


@pytest.mark.parametrize(
    "space",
    [
        SearchSpace(),
        SearchSpace(
            blocks=("none", "joint", "compose", "ag", "cbam"),
            pairs=(("pwa", "sa"), ("ag", "se"), ("cam", "pam")),
            options=(("joint.similarity", ("dot",)), ("compose.sa.similarity", ("dot",))),
            placements=("skip", "bottleneck", "decoder"),
            depths=(3,),
            base_widths=(8,),
            backbones=("unet", "resunet"),
        ),
    ],
)
def test_count_equals_the_number_of_distinct_sampled_specs(space: SearchSpace) -> None:
    assert count_architectures(space) == len(enumerate_specs(space))


def test_widest_space_samples_are_valid_and_gates_stay_at_skips() -> None:
    space = SearchSpace.widest()
    for seed in range(400):
        spec = sample_spec(RandomTrial(seed), space)
        assert ArchSpec.from_json(spec.to_json()) == spec
        uses_gate = spec.attention.block in ("ag", "gff") or (
            spec.attention.block == "compose"
            and {spec.attention.option("a"), spec.attention.option("b")} & {"ag", "gff"}
        )
        if uses_gate:
            assert [name for name, _ in spec.attention.placement] == ["skip"]


@pytest.mark.slow
def test_200_widest_space_specs_build_and_run_forward() -> None:
    space = SearchSpace.widest()
    for seed in range(200):
        dims = 2 if seed % 2 == 0 else 3
        spec = sample_spec(RandomTrial(seed), space, SampleContext(spatial_dims=dims))
        model = build_model(spec).eval()
        x = torch.randn(1, 1, *((64, 64) if dims == 2 else (32, 32, 32)))
        with torch.no_grad():
            out = model(x)
        assert out.shape == (1, 2, *x.shape[2:]), spec.short_label()
        assert torch.isfinite(out).all(), spec.short_label()


def test_a_quick_sample_of_the_widest_space_runs_forward() -> None:
    space = SearchSpace.widest()
    for seed in range(12):
        dims = 2 if seed % 2 == 0 else 3
        spec = sample_spec(RandomTrial(1000 + seed), space, SampleContext(spatial_dims=dims))
        x = torch.randn(1, 1, *((32, 32) if dims == 2 else (16, 16, 16)))
        with torch.no_grad():
            assert build_model(spec).eval()(x).shape == (1, 2, *x.shape[2:])


@pytest.mark.parametrize("backbone", ["unet", "resunet", "denseunet"])
@pytest.mark.parametrize("dims", [2, 3])
def test_placements_put_blocks_exactly_where_declared(backbone: str, dims: int) -> None:
    attention = AttentionSpec("se", (), (("encoder", (0,)), ("bottleneck", (2,)), ("decoder", (1,)), ("skip", (0, 1))))
    spec = ArchSpec(spatial_dims=dims, backbone=backbone, channels=(8, 16, 32), attention=attention)
    model = build_model(spec)
    present = {
        "encoder": [site.block is not None for site in model.encoder_attention],
        "bottleneck": [model.bottleneck_attention.block is not None],
        "decoder": [site.block is not None for site in model.decoder_attention],
        "skip": [site.block is not None for site in model.skip_attention],
    }
    assert present == {
        "encoder": [True, False],
        "bottleneck": [True],
        "decoder": [False, True],
        "skip": [True, True],
    }
    x = torch.randn(2, 1, *(16,) * dims)
    out = model(x)
    out.sum().backward()
    assert out.shape == (2, 2, *x.shape[2:])


def test_gated_skip_blocks_receive_the_coarser_decoder_feature() -> None:
    spec = ArchSpec(channels=(8, 16, 32), attention=AttentionSpec("ag", (), (("skip", (0, 1)),)))
    model = build_model(spec)
    seen: list[tuple[int, ...]] = []
    for site in model.skip_attention:
        site.block.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[1].shape)))
    model(torch.randn(1, 1, 16, 16))
    assert seen == [
        (1, 32, 4, 4),
        (1, 16, 8, 8),
    ]  # level 1 gated by the bottleneck, level 0 by decoder level 1
