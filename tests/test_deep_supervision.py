"""Deep supervision, model side (MPU-Net eq. 18-19, nnU-Net): auxiliary heads on the decoder levels
above the final head, a tuple in training mode, the main logits alone in eval mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch

from nas.cli import main
from search_spaces import (
    ArchSpec,
    AttentionSpec,
    SearchSpace,
    SpecError,
    build_model,
    count_architectures,
    enumerate_specs,
    sample_spec,
)
from trainers import count_flops, count_params
from trainers._memory import estimate_peak_memory, measure_peak_memory

BACKBONES = ("unet", "resunet", "denseunet", "resnet34")


def _spec(backbone: str, dims: int, heads: int, **kwargs: object) -> ArchSpec:
    return ArchSpec(spatial_dims=dims, backbone=backbone, channels=(4, 8, 8, 16), deep_supervision=heads, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_training_mode_returns_main_and_one_output_per_auxiliary_level(backbone: str, dims: int) -> None:
    model: Any = build_model(_spec(backbone, dims, 2)).train()
    side = 32  # resnet34 at 4 levels: 1/16 at the bottleneck, 2 voxels a side (instance norm needs > 1)
    x = torch.randn(2, 1, *(side,) * dims)
    outputs = model(x)
    assert isinstance(outputs, tuple) and len(outputs) == 3
    for level, out in enumerate(outputs):  # main at full resolution, aux_i at 1/2**i
        assert out.shape == (2, 2, *(side // 2**level,) * dims), (backbone, level)
    sum(o.square().mean() for o in outputs).backward()
    assert all(h.weight.grad is not None for h in model.aux_heads)
    model.eval()
    with torch.no_grad():
        single = model(x)
    assert isinstance(single, torch.Tensor) and single.shape == outputs[0].shape


def test_eval_output_is_the_training_main_output_and_flops_are_unchanged() -> None:
    plain = _spec("unet", 2, 0)
    supervised = _spec("unet", 2, 2)
    torch.manual_seed(3)
    a = build_model(plain)
    torch.manual_seed(3)
    b = build_model(supervised)
    # The aux heads are created last: everything else is initialised exactly as without them.
    assert all(torch.equal(t, b.state_dict()[name]) for name, t in a.state_dict().items())
    assert set(b.state_dict()) - set(a.state_dict()) == {
        f"aux_heads.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")
    }
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        main_train = b.train()(x)[0]
        assert torch.allclose(b.eval()(x), main_train) and torch.allclose(a.eval()(x), main_train)
    assert count_flops(a, (1, 32, 32)) == count_flops(b, (1, 32, 32))  # inference does not run the aux heads
    assert count_params(b) - count_params(a) == (8 + 1) * 2 + (8 + 1) * 2


def test_memory_estimate_and_measurement_take_the_tuple_of_outputs() -> None:
    plain, supervised = build_model(_spec("unet", 2, 0)), build_model(_spec("unet", 2, 2))
    shape = (1, 32, 32)
    assert estimate_peak_memory(supervised, shape).peak_bytes > estimate_peak_memory(plain, shape).peak_bytes
    assert measure_peak_memory(supervised, shape) > 0
    assert all(p.grad is None for p in supervised.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_auxiliary_head_reads_the_decoder_feature_of_its_level(backbone: str) -> None:
    model: Any = build_model(_spec(backbone, 2, 2, attention=AttentionSpec("pwa", (), (("decoder", (0, 1, 2)),))))
    model.train()
    decoded: dict[int, torch.Tensor] = {}
    read: dict[int, torch.Tensor] = {}
    for level, site in enumerate(model.decoder_attention):
        site.register_forward_hook(lambda m, args, out, level=level: decoded.__setitem__(level, out))
    for index, head in enumerate(model.aux_heads, start=1):
        head.register_forward_hook(lambda m, args, out, index=index: read.__setitem__(index, args[0]))
    model(torch.randn(2, 1, 32, 32))
    offset = model.level_offset  # resnet34's level l is at 1/2**(l + 1): aux_i reads decoder level i - 1
    assert offset == (1 if backbone == "resnet34" else 0)
    assert sorted(read) == [1, 2]
    for index, tensor in read.items():
        assert tensor is decoded[index - offset], (backbone, index)


def test_the_field_is_left_out_of_the_json_at_zero_so_existing_hashes_hold() -> None:
    # Hashes computed on main before deep supervision existed.
    assert ArchSpec().spec_hash() == "4d6f2fab44b8c9a8de8a1c74e9438029c4bd5b1983fd19db31767492be9c5729"
    spec = ArchSpec(
        spatial_dims=3,
        backbone="resunet",
        channels=(8, 16, 32),
        attention=AttentionSpec(block="pwa", placement=(("skip", (0, 1)),)),
    )
    assert spec.spec_hash() == "8f58d4cbf23fd14c9b50651b1bd8382e2f6bc934164d62c4080a709bccc9b0c3"
    assert "deep_supervision" not in spec.to_dict()
    supervised = ArchSpec(deep_supervision=2)
    assert supervised.to_dict()["deep_supervision"] == 2 and supervised.spec_hash() != ArchSpec().spec_hash()
    assert ArchSpec.from_json(supervised.to_json()) == supervised
    assert supervised.short_label().endswith(" ds2")


@pytest.mark.parametrize("value", [-1, 3, True, 1.0])
def test_out_of_range_is_one_line_naming_the_field_and_the_range(value: object) -> None:
    with pytest.raises(SpecError) as caught:
        ArchSpec(channels=(8, 16, 32, 64), deep_supervision=value)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("deep_supervision: ") and "0..2" in message and "\n" not in message


def test_a_space_fixes_or_searches_the_number_of_heads() -> None:
    fixed = SearchSpace(blocks=("none",), depths=(3, 4), base_widths=(8,))
    assert fixed.to_dict()["deep_supervision"] == [0]
    listed = enumerate_specs(fixed)
    assert all(spec.deep_supervision == 0 and "deep_supervision" not in str(params) for params, spec in listed)

    searched = SearchSpace.from_dict({**fixed.to_dict(), "deep_supervision": [0, 2]})
    listed = enumerate_specs(searched)
    # depth 3 only fits k = 0 (no parameter); depth 4 offers both.
    assert sorted((s.depth, s.deep_supervision) for _, s in listed) == [(3, 0), (4, 0), (4, 2)]
    assert count_architectures(searched) == len(listed) == 3
    assert {name for params, _ in listed for name in params if name.startswith("deep")} == {"deep_supervision.depth4"}

    class First:
        def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
            return choices[-1]

    assert sample_spec(First(), searched).deep_supervision == 2
    for bad in ([3], [], [-1]):
        with pytest.raises(SpecError, match=r"space\.deep_supervision"):
            SearchSpace(depths=(3, 4), deep_supervision=tuple(bad))


def test_nas_space_show_lists_the_field(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "show", "--samples", "0"]) == 0
    assert "  deep_supervision: [0]" in capsys.readouterr().out
