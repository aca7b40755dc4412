"""What a candidate costs: FLOPs that include every attention matmul, and parameters.

Units: FLOPs = 2 × multiply-accumulates of the convolutions, matrix products and attention
products of one forward pass at batch 1 (element-wise ops, norms and activations are not counted,
as in torch's ``FlopCounterMode`` and the papers' tables). ``torch.utils.flop_counter`` knows the
CUDA attention kernels but counts the CPU ``scaled_dot_product_attention`` kernels as 0 FLOPs in
torch 2.13; they are registered here with the same formula so an attention-heavy candidate is
never under-counted on a CPU-only machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


def _sdpa_forward(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    return int(sdpa_flop_count(query_shape, key_shape, value_shape))


def _sdpa_backward(
    grad_out_shape: Any, query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any
) -> int:
    return int(sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape))


def _extra_formulas() -> dict[Any, Callable[..., int]]:
    aten = torch.ops.aten
    formulas: dict[Any, Callable[..., int]] = {}
    for name, formula in (
        ("_scaled_dot_product_flash_attention_for_cpu", _sdpa_forward),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", _sdpa_backward),
        ("_scaled_dot_product_fused_attention_overrideable", _sdpa_forward),
        ("_scaled_dot_product_attention_math_for_mps", _sdpa_forward),
    ):
        if hasattr(aten, name):
            formulas[getattr(aten, name)] = formula
    return formulas


@dataclass(frozen=True)
class ModelCost:
    """FLOPs (forward, batch 1), parameters and estimated training peak memory at one input shape."""

    flops: int
    params: int
    input_shape: tuple[int, ...]
    peak_memory_bytes: int = 0

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def peak_memory_mb(self) -> float:
        return self.peak_memory_bytes / 2**20


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs of ``model`` on one input of shape ``input_shape = (C, *spatial)``.

    Runs on fake tensors (shapes only, no arithmetic), so it is cheap enough to screen candidates.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with (
            FakeTensorMode(allow_non_fake_inputs=True),
            torch.no_grad(),
            FlopCounterMode(display=False, custom_mapping=_extra_formulas()) as counter,
        ):
            model(torch.zeros((1, *input_shape), device=device))
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], *, repeats: int = 5) -> float:
    """Median seconds of one forward pass at batch 1 (eval mode, no gradients) on the model's device,
    after one warm-up pass."""
    import statistics
    import time

    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn((1, *input_shape), device=device)
    times = []
    try:
        with torch.no_grad():
            for i in range(repeats + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:  # the first pass warms caches and allocators
                    times.append(time.perf_counter() - started)
    finally:
        model.train(was_training)
    return float(statistics.median(times))


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_cost(model: nn.Module, input_shape: tuple[int, ...]) -> ModelCost:
    """FLOPs, parameters and estimated training peak memory of ``model`` at ``input_shape`` (batch 1)."""
    from trainers._memory import estimate_peak_memory

    return ModelCost(
        flops=count_flops(model, input_shape),
        params=count_params(model),
        input_shape=input_shape,
        peak_memory_bytes=estimate_peak_memory(model, input_shape).peak_bytes,
    )
