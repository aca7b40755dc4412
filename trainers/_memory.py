"""Peak memory of one forward+backward pass at batch 1: an estimate before training, and a measurement.

The estimate runs the model once on fake tensors (``FakeTensorMode``: shapes and dtypes only, no
arithmetic, no activation memory) and models the allocation timeline from what it sees:

- every tensor autograd saves for the backward pass (activations, masks, attention statistics),
  in the order they are saved, with parameters left out;
- the transient im2col buffer of convolutions that CPU torch runs through its slow (non-oneDNN)
  kernels: ``C_in/groups × kernel volume × output positions`` floats, using torch's own rule for
  when oneDNN is skipped on CPU (batch 1, no groups, kernels ≤ 3, and ``N·C·D·H ≤ 20480``
  elements in the input's first four dimensions);
- for attention that CPU torch runs through its math kernel (unequal head sizes, or a mask that
  needs a gradient, as axial attention's relative-position bias does), its score matrix and
  softmax (the saved one is also counted with the saved tensors);
- the per-thread work buffers of CPU flash attention's backward pass (two blocks of
  ``q_split × kv_split`` floats per thread, with torch's split sizes: q 256/64/32 by sequence
  length ≥ 768/192, kv 512 or the whole sequence);
- the parameter gradients, allocated during the backward pass.

Peak ≈ max over time of (saved so far + the transient at that point), plus the gradients. The
backward pass frees saved tensors in reverse order, so a transient seen at forward time ``t``
recurs in the backward pass with the same live set: the forward maximum is the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode

_ONEDNN_MIN_ELEMENTS = 20480


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one forward+backward pass at batch 1: saved activations, largest transient, gradients."""

    saved_bytes: int
    peak_transient_bytes: int
    gradient_bytes: int
    peak_bytes: int

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def _slow_conv_workspace(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if not isinstance(module, nn.modules.conv._ConvNd) or not inputs:
        return 0
    x = inputs[0]
    kernel = tuple(module.kernel_size)
    if module.groups > 1 or max(kernel) > 3 or x.shape[0] > 1 or math.prod(x.shape[:4]) > _ONEDNN_MIN_ELEMENTS:
        return 0  # oneDNN path: no im2col buffer
    if all(k == 1 for k in kernel) and all(s == 1 for s in module.stride):
        return 0
    element = output.element_size()
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return module.out_channels // module.groups * math.prod(kernel) * math.prod(x.shape[2:]) * element
    return module.in_channels // module.groups * math.prod(kernel) * math.prod(output.shape[2:]) * element


def _flash_backward_workspace(query: torch.Tensor, key: torch.Tensor) -> int:
    q_len, kv_len = query.shape[-2], key.shape[-2]
    q_split = 256 if q_len >= 768 else 64 if q_len >= 192 else 32
    kv_split = 512 if kv_len >= 512 else kv_len
    return torch.get_num_threads() * 2 * min(q_split, q_len) * kv_split * query.element_size()


def _math_fallback(query: torch.Tensor, value: torch.Tensor, mask: Any) -> bool:
    """Whether CPU torch runs this attention through its math kernel: head sizes that differ, or a
    mask that needs a gradient (the fused kernel gives none)."""
    return query.shape[-1] != value.shape[-1] or (isinstance(mask, torch.Tensor) and mask.requires_grad)


def _math_transient(query: torch.Tensor, key: torch.Tensor) -> int:
    """The math kernel's score matrix and its softmax, ``(…, L_q, L_k)`` each, before one is saved."""
    return 2 * math.prod(query.shape[:-1]) * key.shape[-2] * query.element_size()


class _AttentionWatch(TorchFunctionMode):
    """Notes the work buffers of each ``scaled_dot_product_attention`` call on the timeline."""

    def __init__(self, timeline: list[tuple[int, int]]) -> None:
        super().__init__()
        self.timeline = timeline

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") == "scaled_dot_product_attention":
            given = {**dict(zip(("query", "key", "value", "attn_mask"), args, strict=False)), **(kwargs or {})}
            query, key, value, mask = given["query"], given["key"], given["value"], given.get("attn_mask")
            if _math_fallback(query, value, mask):
                self.timeline.append((0, _math_transient(query, key)))
            else:
                self.timeline.append((0, _flash_backward_workspace(query, key)))
        return func(*args, **(kwargs or {}))


def estimate_peak_memory(model: nn.Module, input_shape: tuple[int, ...]) -> MemoryEstimate:
    """Estimate the peak bytes a forward+backward pass of ``model`` at ``(1, *input_shape)`` allocates.

    The model's own parameters are not counted (they exist before the pass); their gradients are.
    Nothing is computed on real data, so this is cheap enough to screen candidates before training.
    """
    params = {StorageWeakRef(p.untyped_storage()) for p in model.parameters()}
    seen: set[StorageWeakRef] = set()
    timeline: list[tuple[int, int]] = []  # (saved bytes added, transient bytes) in execution order

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        ref = StorageWeakRef(tensor.untyped_storage())
        if ref not in params and ref not in seen:
            seen.add(ref)
            timeline.append((tensor.untyped_storage().nbytes(), 0))
        return tensor

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        workspace = _slow_conv_workspace(module, inputs, output)
        if workspace:
            timeline.append((0, workspace))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    model.train()
    try:
        with (
            _AttentionWatch(timeline),
            FakeTensorMode(allow_non_fake_inputs=True),
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        ):
            output = model(torch.empty((1, *input_shape)))
            # Deep supervision: in training mode the model returns (main, aux_1, ..., aux_k).
            outputs = output if isinstance(output, tuple) else (output,)
            output_bytes = sum(o.numel() * o.element_size() for o in outputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    live = peak = 0
    largest_transient = 0
    for saved, transient in timeline:
        live += saved
        largest_transient = max(largest_transient, transient)
        peak = max(peak, live + transient)
    peak = max(peak, live + 2 * output_bytes)  # the loss's gradient w.r.t. the output joins the saved set
    gradients = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return MemoryEstimate(
        saved_bytes=live,
        peak_transient_bytes=largest_transient,
        gradient_bytes=gradients,
        peak_bytes=peak + gradients,
    )


def measure_peak_memory(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Measure the peak bytes CPU torch allocates for one forward+backward pass at batch 1.

    Uses the profiler's allocation events (every allocation and free, in time order); the input
    is created before the measured region, like the parameters.
    """
    from torch.profiler import ProfilerActivity, profile

    model.train()
    x = torch.randn((1, *input_shape))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        output = model(x)
        outputs = output if isinstance(output, tuple) else (output,)  # deep supervision: every head
        sum(o.square().mean() for o in outputs).backward()
    # The public event list folds allocations into operators; the raw results keep each one.
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    model.zero_grad(set_to_none=True)
    return peak
