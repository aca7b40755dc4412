"""FLOPs must count the attention products, including the CPU SDPA kernels torch's counter skips."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from search_spaces import ArchSpec, AttentionSpec, build_model
from trainers import count_flops, count_params, model_cost


def spec_with(block: str, similarity: str | None, dims: int, levels: tuple[int, ...]) -> ArchSpec:
    if block == "none":
        return ArchSpec(spatial_dims=dims, channels=(8, 16, 32))
    options = (("similarity", similarity),) if similarity else ()
    return ArchSpec(
        spatial_dims=dims, channels=(8, 16, 32), attention=AttentionSpec(block, options, (("skip", levels),))
    )


def analytic_sa_flops(channels: int, n: int, similarity: str) -> int:
    """2 × MACs of one SA block on C channels over N positions, written out independently."""
    inner = channels // 2
    projections = 3 * 2 * n * channels * inner  # θ, φ, g: 1x1 convs C → C'
    output = 2 * n * inner * channels  # W: 1x1 conv C' → C
    # dot: φgᵀ (C'×C') and θ·(φgᵀ); softmax: θᵀφ (N×N) and softmax(·)·g
    products = 2 * (2 * n * inner * inner) if similarity == "dot" else 2 * (2 * n * n * inner)
    return projections + output + products


@pytest.mark.parametrize("similarity", ["dot", "softmax"])
@pytest.mark.parametrize("dims", [2, 3])
def test_sa_flops_exceed_the_plain_model_by_the_analytic_count(similarity: str, dims: int) -> None:
    shape = (1, 32, 32) if dims == 2 else (1, 16, 16, 16)
    base = count_flops(build_model(spec_with("none", None, dims, ())), shape)
    with_sa = count_flops(build_model(spec_with("sa", similarity, dims, (0, 1))), shape)
    side = shape[1]
    expected = analytic_sa_flops(8, side**dims, similarity) + analytic_sa_flops(16, (side // 2) ** dims, similarity)
    assert with_sa - base == expected


def test_torch_counter_alone_undercounts_cpu_sdpa_and_ours_does_not() -> None:
    model = build_model(spec_with("sa", "softmax", 2, (0,)))
    x = torch.zeros(1, 1, 32, 32)
    with torch.no_grad(), FlopCounterMode(display=False) as stock:
        model(x)
    ours = count_flops(model, (1, 32, 32))
    n, inner = 32 * 32, 4
    assert ours - stock.get_total_flops() == 2 * (2 * n * n * inner)


def test_params_and_cost_record() -> None:
    model = build_model(ArchSpec(channels=(8, 16)))
    cost = model_cost(model, (1, 16, 16))
    assert cost.params == count_params(model) == sum(p.numel() for p in model.parameters())
    assert cost.gflops == pytest.approx(cost.flops / 1e9)
    assert model.training  # counting does not leave the model in eval mode


def test_latency_is_measured_per_forward_pass() -> None:
    import time

    from trainers import measure_latency

    class Slow(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time.sleep(0.02)
            return x

    model = Slow()
    model.train()
    assert 0.02 <= measure_latency(model, (1, 8, 8), repeats=3) < 0.2
    assert model.training  # the mode is restored
