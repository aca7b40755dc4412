"""Declared spaces: the widest space builds everywhere, counts are exact, placements land where declared."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from search_spaces import (
    ArchSpec,
    AttentionSpec,
    EncoderDecoder,
    SampleContext,
    SearchSpace,
    SpecError,
    baseline_params,
    build_model,
    count_architectures,
    enumerate_specs,
    sample_spec,
)


class RandomTrial:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


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
    listed = enumerate_specs(space)
    assert count_architectures(space) == len(listed) == len({spec.spec_hash() for _, spec in listed})


class ReplayTrial:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        assert self.params[name] in choices
        return self.params[name]


def test_enumerated_parameters_make_the_sampler_produce_that_spec() -> None:
    space = SearchSpace(blocks=("none", "pwa", "joint"), depths=(3,), base_widths=(8, 16))
    for params, spec in enumerate_specs(space):
        assert sample_spec(ReplayTrial(params), space) == spec


def test_a_space_too_large_for_a_grid_is_refused_with_its_size() -> None:
    with pytest.raises(SpecError, match="424 distinct architectures"):
        enumerate_specs(SearchSpace(), limit=100)


def test_level_choice_all_places_attention_at_every_listed_level() -> None:
    space = SearchSpace(
        blocks=("none", "pwa", "sa", "joint"),
        options=(("sa.similarity", ("dot",)), ("joint.similarity", ("dot",))),
        level_choice="all",
        backbones=("denseunet",),
        depths=(4,),
        base_widths=(16,),
    )
    # none, pwa, sa and the nine joint variants: the JA paper's ablation
    specs = [spec for _, spec in enumerate_specs(space)]
    assert count_architectures(space) == len(specs) == 12
    for spec in specs:
        if spec.attention.block != "none":
            assert spec.attention.placement == (("skip", (0, 1, 2)),)
    with pytest.raises(SpecError, match=r"space\.level_choice"):
        SearchSpace(level_choice="some")
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_baselines_put_one_block_at_every_allowed_site_of_the_first_backbone() -> None:
    space = SearchSpace(blocks=("none", "pwa", "sa", "joint"), depths=(3, 4), base_widths=(8, 16))
    pwa = sample_spec(ReplayTrial(baseline_params(space, "pwa") or {}), space)
    assert pwa.attention.block == "pwa" and pwa.attention.placement == (("skip", (0, 1)),)
    assert pwa.channels == (8, 16, 32)
    none = baseline_params(space, "none")
    assert none is not None and sample_spec(ReplayTrial(none), space).attention.block == "none"
    assert baseline_params(space, "cbam") is None  # not in the space


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


class _Calls:
    """Forward-hook recorder: every call of one module, with its arguments and output."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []
        module.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        self.calls.append((args, kwargs, out))

    def one(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The input, the gating argument (or None) and the output of the only call."""
        assert len(self.calls) == 1, f"called {len(self.calls)} times in one forward"
        args, kwargs, out = self.calls[0]
        gate = args[1] if len(args) > 1 else kwargs.get("gate")
        return args[0], gate, out


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return a is not None and b is not None and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("backbone", ["unet", "resunet", "denseunet"])
@pytest.mark.parametrize("dims", [2, 3])
def test_placements_put_blocks_exactly_where_declared(backbone: str, dims: int) -> None:
    """Data flow, not just presence: each declared block runs once per forward, on the output of
    the stage it follows, and its output is what the network carries on; undeclared sites pass
    their input through unchanged."""
    attention = AttentionSpec("se", (), (("encoder", (0,)), ("bottleneck", (2,)), ("decoder", (1,)), ("skip", (0, 1))))
    spec = ArchSpec(spatial_dims=dims, backbone=backbone, channels=(8, 16, 32), attention=attention)
    model = build_model(spec)
    assert isinstance(model, EncoderDecoder)
    declared = {"encoder": {0}, "bottleneck": {2}, "decoder": {1}, "skip": {0, 1}}
    sites: dict[str, dict[int, torch.nn.Module]] = {
        "encoder": dict(enumerate(model.encoder_attention)),
        "bottleneck": {2: model.bottleneck_attention},
        "decoder": dict(enumerate(model.decoder_attention)),
        "skip": dict(enumerate(model.skip_attention)),
    }
    for placement, by_level in sites.items():
        for level, site in by_level.items():
            assert (site.block is not None) == (level in declared[placement]), (placement, level)
    flat = {(placement, level): site for placement, by_level in sites.items() for level, site in by_level.items()}
    site_calls = {key: _Calls(site) for key, site in flat.items()}
    block_calls = {key: _Calls(block) for key, site in flat.items() if isinstance(block := site.block, torch.nn.Module)}
    encoder = [_Calls(stage) for stage in model.encoder]
    decoder = [_Calls(stage) for stage in model.decoder]
    up = [_Calls(stage) for stage in model.up]
    head = _Calls(model.head)
    pool = torch.nn.functional.max_pool2d if dims == 2 else torch.nn.functional.max_pool3d

    x = torch.randn(2, 1, *(16,) * dims)
    out = model(x)

    # every site: declared ones run their block exactly once, on the site's input, and hand on its output
    site_io = {}
    for key, calls in site_calls.items():
        site_in, site_gate, site_out = calls.one()
        site_io[key] = (site_in, site_gate, site_out)
        if key in block_calls:
            block_in, _, block_out = block_calls[key].one()
            assert block_in is site_in and block_out is site_out, key
            assert not _same(block_out, block_in), f"{key}: the block left its input unchanged"
        else:
            assert _same(site_out, site_in), f"{key}: an undeclared site changed its input"
    # encoder: site l sees stage l's output; stage l+1 sees the pooled site output
    assert encoder[0].one()[0] is x
    for level in range(2):
        assert _same(site_io[("encoder", level)][0], encoder[level].one()[2]), f"encoder site {level}"
        assert _same(encoder[level + 1].one()[0], pool(site_io[("encoder", level)][2], 2)), f"encoder stage {level + 1}"
    assert _same(site_io[("bottleneck", 2)][0], encoder[2].one()[2]), "bottleneck site"
    # decoder: level l upsamples the coarser result, concatenates the attended skip, then its site runs
    coarser = site_io[("bottleneck", 2)][2]
    for level in (1, 0):
        skip_in, skip_gate, skip_out = site_io[("skip", level)]
        assert _same(skip_in, site_io[("encoder", level)][2]), f"skip site {level} input"
        assert _same(skip_gate, coarser), f"skip site {level} gate"
        assert _same(up[level].one()[0], coarser), f"up {level}"
        stage_in, _, stage_out = decoder[level].one()
        assert _same(stage_in, torch.cat([skip_out, up[level].one()[2]], dim=1)), f"decoder stage {level} input"
        assert _same(site_io[("decoder", level)][0], stage_out), f"decoder site {level} input"
        coarser = site_io[("decoder", level)][2]
    assert _same(head.one()[0], coarser) and head.one()[2] is out
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


def test_a_second_mechanism_goes_to_other_sites_as_in_mpu_net() -> None:
    space = SearchSpace(
        blocks=("none", "pam", "cam"),
        placements=("bottleneck",),
        extra_blocks=("none", "ag", "pwa"),
        extra_placements=("skip",),
        depths=(3,),
        base_widths=(8,),
    )
    listed = [spec for _, spec in enumerate_specs(space, SampleContext(spatial_dims=3))]
    # (none, pam, cam) x (none, ag at 3 level subsets, pwa at 3 level subsets)
    assert count_architectures(space) == len(listed) == 3 * 7
    mpu = next(
        s for s in listed if s.attention.block == "pam" and s.extra_attention and s.extra_attention[0].block == "ag"
    )
    assert mpu.short_label().startswith("pam@bottleneck[2] + ag@skip")
    model = build_model(mpu)
    assert type(model.bottleneck_attention.block).__name__ == "PositionAttention"
    gated = [site for site in model.skip_attention if site.block is not None]
    assert gated and all(site.uses_gate for site in gated)
    assert model(torch.randn(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    assert ArchSpec.from_dict(mpu.to_dict()) == mpu and "extra_attention" in mpu.to_dict()
    assert "extra_attention" not in ArchSpec().to_dict()  # single-mechanism specs keep their hashes
    with pytest.raises(SpecError, match=r"extra_attention\.0\.placement\.skip: level 0 already holds attention"):
        ArchSpec(
            channels=(8, 16, 32),
            attention=AttentionSpec("pwa", (), (("skip", (0,)),)),
            extra_attention=(AttentionSpec("ag", (), (("skip", (0, 1)),)),),
        )
    with pytest.raises(SpecError, match=r"space\.extra_placements: 'bottleneck' is also in space\.placements"):
        SearchSpace(blocks=("pam",), placements=("bottleneck",), extra_blocks=("se",), extra_placements=("bottleneck",))
    with pytest.raises(SpecError, match=r"space\.extra_blocks: 'ag' cannot be placed"):
        SearchSpace(extra_blocks=("ag",), extra_placements=("bottleneck",))
    assert SearchSpace.from_dict(space.to_dict()) == space
