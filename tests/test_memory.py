"""The pre-training memory estimate against the peak CPU torch really allocates."""

from __future__ import annotations

import pytest
import torch

from nas import ConfigError, Constraints
from search_spaces import ArchSpec, AttentionSpec, build_model
from trainers import estimate_peak_memory, measure_peak_memory, model_cost

CASES = [
    ("unet-2d-plain", ArchSpec(channels=(16, 32, 64)), (1, 64, 64)),
    (
        "unet-2d-joint-softmax",
        ArchSpec(
            channels=(8, 16, 32),
            attention=AttentionSpec("joint", (("similarity", "softmax"),), (("skip", (0, 1)),)),
        ),
        (1, 64, 64),
    ),
    (
        "denseunet-2d-cca-everywhere",
        ArchSpec(
            backbone="denseunet",
            channels=(8, 16, 32),
            attention=AttentionSpec("cca", (), (("encoder", (0,)), ("bottleneck", (2,)), ("decoder", (0, 1)))),
        ),
        (1, 64, 64),
    ),
    (
        "resunet-3d-ag",
        ArchSpec(
            spatial_dims=3,
            backbone="resunet",
            channels=(8, 16, 32),
            attention=AttentionSpec("ag", (), (("skip", (0, 1)),)),
        ),
        (1, 24, 24, 24),
    ),
    (
        "unet-3d-isam-bottleneck",
        ArchSpec(spatial_dims=3, channels=(16, 32, 64), attention=AttentionSpec("isam", (), (("bottleneck", (2,)),))),
        (1, 16, 16, 16),
    ),
]


@pytest.mark.parametrize(("name", "spec", "shape"), CASES, ids=[c[0] for c in CASES])
def test_estimate_is_within_30_percent_of_the_measured_peak(name: str, spec: ArchSpec, shape: tuple) -> None:
    torch.manual_seed(0)
    model = build_model(spec)
    estimate = estimate_peak_memory(model, shape)
    measured = measure_peak_memory(model, shape)
    assert measured > 0
    ratio = estimate.peak_bytes / measured
    assert 0.7 <= ratio <= 1.3, f"{name}: estimate {estimate.peak_bytes} vs measured {measured} (x{ratio:.2f})"
    assert estimate.saved_bytes > 0 and estimate.gradient_bytes == 4 * sum(p.numel() for p in model.parameters())


def test_estimate_allocates_nothing_and_leaves_the_model_as_it_was() -> None:
    model = build_model(ArchSpec(channels=(8, 16))).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimate_peak_memory(model, (1, 512, 512))  # 512² activations would be slow to compute for real
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_softmax_attention_costs_more_memory_than_dot_and_budget_refuses_it() -> None:
    def cost(similarity: str):  # type: ignore[no-untyped-def]
        spec = ArchSpec(
            channels=(8, 16, 32),
            attention=AttentionSpec("sa", (("similarity", similarity),), (("skip", (0,)),)),
        )
        return model_cost(build_model(spec), (1, 128, 128))

    dot, softmax = cost("dot"), cost("softmax")
    assert softmax.peak_memory_bytes > dot.peak_memory_bytes > 0
    budget = (dot.peak_memory_mb + softmax.peak_memory_mb) / 2
    bounded = Constraints(max_memory_mb=budget)
    assert bounded.check(dot) == (0.0, None)
    violation, reason = bounded.check(softmax)
    assert violation == pytest.approx(softmax.peak_memory_mb / budget - 1)
    assert reason is not None and "infeasible" in reason and f"> {budget:.0f}" in reason
    assert Constraints().check(softmax) == (0.0, None)


def test_every_broken_bound_is_named_and_adds_to_the_violation() -> None:
    cost = model_cost(build_model(ArchSpec(channels=(8, 16))), (1, 32, 32))
    violation, reason = Constraints(max_gflops=cost.gflops / 2, max_params=cost.params / 4).check(cost)
    assert violation == pytest.approx(1.0 + 3.0)
    assert reason is not None and "GFLOPs" in reason and "parameters" in reason
    with pytest.raises(ConfigError, match=r"constraints\.max_gflops"):
        Constraints(max_gflops=0)
