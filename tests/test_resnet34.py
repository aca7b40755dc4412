"""The resnet34 backbone (AF-Net's encoder): ResNet-34's stem and stages, attention inside the residual
units, GFF in place of the concatenation, and AF-Net itself as a spec."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

from search_spaces import (
    ArchSpec,
    AttentionSpec,
    SearchSpace,
    SpecError,
    block_info,
    block_names,
    build_model,
    sample_spec,
)
from trainers import count_flops, count_params

TORCHVISION_WIDTHS = (64, 64, 128, 256, 512)
#: torchvision's resnet34 has 21,797,672 parameters, 513,000 of them in its 1000-class fc layer.
RESNET34_WITHOUT_FC = 21_797_672 - 513_000


def resnet(channels: tuple[int, ...] = (8, 8, 16, 32), dims: int = 2, **kwargs: Any) -> ArchSpec:
    return ArchSpec(spatial_dims=dims, backbone="resnet34", channels=channels, **kwargs)


def afnet(in_channels: int = 3) -> ArchSpec:
    """AF-Net (CMC 2021): DA-blocks in the four ResNet-34 stages, GFF at the skips, MFF at the bottleneck."""
    return ArchSpec(
        in_channels=in_channels,
        out_channels=1,
        backbone="resnet34",
        channels=TORCHVISION_WIDTHS,
        norm="batch",
        attention=AttentionSpec("da_block", (), (("encoder", (1, 2, 3, 4)),)),
        extra_attention=(
            AttentionSpec("gff", (), (("skip", (0, 1, 2, 3)),)),
            AttentionSpec("mff", (), (("bottleneck", (4,)),)),
        ),
    )


def test_the_encoder_is_resnet34_stage_for_stage() -> None:
    model: Any = build_model(resnet(TORCHVISION_WIDTHS, in_channels=3, norm="batch"))
    encoder = model.encoder
    assert [len(stage.blocks) for stage in encoder[1:]] == [3, 4, 6, 3]
    assert tuple(encoder[0].conv1.weight.shape) == (64, 3, 7, 7) and encoder[0].conv1.stride == (2, 2)
    assert encoder[1].pool.kernel_size == 3 and encoder[1].pool.stride == 2
    assert [stage.blocks[0].conv1.stride for stage in encoder[1:]] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert [stage.blocks[0].downsample is not None for stage in encoder[1:]] == [False, True, True, True]
    assert sum(p.numel() for p in encoder.parameters()) == RESNET34_WITHOUT_FC


@pytest.mark.parametrize("dims", [2, 3])
def test_levels_sit_at_half_to_one_thirty_second_and_the_output_at_full_resolution(dims: int) -> None:
    model: Any = build_model(resnet((4, 4, 8, 16, 32), dims)).eval()
    sizes: list[int] = []
    for stage in model.encoder:
        stage.register_forward_hook(lambda m, args, out: sizes.append(out.shape[-1]))
    side = 64
    with torch.no_grad():
        out = model(torch.randn(1, 1, *(side,) * dims))
    assert sizes == [side // 2, side // 4, side // 8, side // 16, side // 32]
    assert out.shape == (1, 2, *(side,) * dims)
    assert type(model).size_multiple(5) == 32
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 1, *(48,) * dims))


def test_the_spec_refuses_more_levels_than_a_stem_and_four_stages() -> None:
    with pytest.raises(SpecError) as caught:
        resnet((8, 8, 16, 32, 64, 128))
    assert (
        str(caught.value) == "channels: backbone 'resnet34' has at most 5 levels (a stem and 4 residual stages), got 6"
    )
    with pytest.raises(SpecError, match=r"space\.depths: 6 is not valid with backbone 'resnet34'"):
        SearchSpace(backbones=("unet", "resnet34"), depths=(4, 6))


def test_encoder_attention_sits_inside_the_last_block_of_each_stage_before_the_addition() -> None:
    spec = resnet(attention=AttentionSpec("pwa", (), (("encoder", (0, 1, 2, 3)),)))
    model: Any = build_model(spec).eval()
    assert all(site.block is None for site in model.encoder_attention[1:])  # the stages hold theirs
    assert model.encoder_attention[0].block is not None  # the stem has no addition: on its output
    for stage in model.encoder[1:]:
        assert [b.attention is not None for b in stage.blocks] == [False] * (len(stage.blocks) - 1) + [True]
    seen: dict[str, torch.Tensor] = {}
    last = model.encoder[2].blocks[-1]
    last.bn2.register_forward_hook(lambda m, a, out: seen.__setitem__("bn2", out))
    last.attention.register_forward_hook(lambda m, a, out: seen.update(site_in=a[0], site_out=out))
    last.register_forward_hook(lambda m, a, out: seen.update(block_in=a[0], block_out=out))
    with torch.no_grad():
        model(torch.randn(1, 1, 32, 32))
        assert seen["site_in"] is seen["bn2"]  # the residual branch, after its second norm
        assert not torch.equal(seen["site_out"], seen["site_in"])
        assert torch.equal(seen["block_out"], torch.relu(seen["site_out"] + seen["block_in"]))  # then the addition


def test_gff_replaces_the_concatenation() -> None:
    spec = resnet(attention=AttentionSpec("gff", (), (("skip", (0, 2)),)))
    model: Any = build_model(spec).eval()
    assert model.fused == (True, False, True)
    assert isinstance(model.up[0], nn.Identity) and not isinstance(model.up[1], nn.Identity)
    first_convs = [stage[0].conv.in_channels for stage in model.decoder]
    assert first_convs == [8, 2 * 8, 16]  # C where GFF fuses, 2C where the skip is concatenated
    fused: dict[str, torch.Tensor] = {}
    model.skip_attention[2].register_forward_hook(lambda m, a, out: fused.__setitem__("gff", out))
    model.decoder[2].register_forward_hook(lambda m, a, out: fused.__setitem__("stage_in", a[0]))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    assert fused["stage_in"] is fused["gff"]
    # The U-Nets keep the concatenation (networks behind existing spec hashes do not change).
    unet: Any = build_model(ArchSpec(channels=(8, 16, 32), attention=AttentionSpec("gff", (), (("skip", (0,)),))))
    assert unet.fused == (False, False) and unet.decoder[0][0].conv.in_channels == 16


def test_every_registered_block_runs_at_every_site_it_allows() -> None:
    x = torch.randn(1, 1, 64, 64)
    for name in block_names():
        if name in ("none", "compose"):
            continue
        allowed = block_info(name).placements
        placement = tuple(
            (p, (3,) if p == "bottleneck" else (0, 1, 2, 3) if p == "encoder" else (0, 1, 2)) for p in allowed
        )
        model: Any = build_model(resnet((16, 16, 32, 64), attention=AttentionSpec(name, (), placement))).eval()
        with torch.no_grad():
            assert model(x).shape == (1, 2, 64, 64), name


def test_a_space_gives_resnet34_resnet_widths() -> None:
    space = SearchSpace(blocks=("none",), backbones=("resnet34",), depths=(5,), base_widths=(64,))

    class First:
        def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
            return choices[0]

    assert sample_spec(First(), space).channels == TORCHVISION_WIDTHS
    assert SearchSpace(backbones=("unet", "resnet34"), depths=(3, 4)).input_multiple() == 16


def test_afnet_is_a_spec_and_its_cost_is_of_the_papers_order() -> None:
    spec = afnet()
    model: Any = build_model(spec)
    flops, params = count_flops(model, (3, 224, 224)), count_params(model)
    # AF-Net reports 5.34 "GFLOPs" at 3x224x224 (Table 5), CE-Net 4.57: by their size, multiply-adds.
    # Ours are 2 x MACs: as built, 14.9 GFLOPs (7.5 GMACs) and 40.1 M parameters (the 512-wide MFF alone
    # holds 14 M); the plain resnet34 U-Net 13.6 GFLOPs, 24.4 M.
    assert 10e9 < flops < 20e9 and 30e6 < params < 50e6, (flops, params)
    plain = build_model(dataclasses.replace(spec, attention=AttentionSpec(), extra_attention=()))
    assert count_flops(plain, (3, 224, 224)) < flops
    encoder = sum(p.numel() for n, p in model.named_parameters() if n.startswith("encoder."))
    assert encoder > RESNET34_WITHOUT_FC  # ResNet-34 plus the DA-blocks inside its stages
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64)
