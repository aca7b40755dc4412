"""DANet's modules at realistic sizes: PAM never builds the N×N matrix, CAM neither degenerates nor overflows.

The formulas themselves are checked against float64 references in ``test_block_references.py``.
"""

from __future__ import annotations

import torch

from search_spaces import create_block
from tests._largest import LargestOutput


def test_pam_at_128_squared_allocates_no_n_by_n_buffer_forward_or_backward() -> None:
    """At 128², C = 32 the N×N float32 matrix is 1 GiB; the fused kernel never builds it."""
    block = create_block("pam", 2, 32)
    with torch.no_grad():
        block.qkv.gamma.fill_(0.5)
    x = torch.randn(1, 32, 128, 128, requires_grad=True)
    watch = LargestOutput()
    with watch:
        block(x).square().sum().backward()
    n = 128 * 128
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert watch.largest < n * n // 64, f"a tensor of {watch.largest:,} elements (N² = {n * n:,})"


def _cam(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    block = create_block("cam", 2, 32)
    with torch.no_grad():
        block.gamma.fill_(1.0)
    return block


def test_cam_is_not_a_learned_scalar_at_64_squared() -> None:
    """With raw ``softmax(X Xᵀ)`` every row is one-hot on its diagonal at 64², so the response is
    ``γ·x``: cosine similarity 1 with the input. DANet's form must mix channels."""
    x = torch.randn(2, 32, 64, 64)
    response = _cam().response(x)
    cosine = torch.nn.functional.cosine_similarity(response.flatten(1), x.flatten(1), dim=1)
    assert cosine.abs().max() < 0.5, f"the response is a multiple of the input (cosine {cosine.tolist()})"
    # and no channel copies a single other channel either: the response is spread over channels
    flat = x.flatten(2)
    for channel in range(32):
        copies = torch.nn.functional.cosine_similarity(response[:, channel].flatten(1)[:, None], flat, dim=2)
        assert copies.abs().max() < 0.9


def test_cam_stays_finite_under_fp16_autocast_at_256_squared() -> None:
    """At 256² with features of magnitude ~3, entries of X Xᵀ reach 6·10⁵ > fp16's 65,504."""
    x = 3 * torch.randn(1, 32, 256, 256)
    with torch.autocast("cpu", dtype=torch.float16):
        out = _cam()(x)
    assert torch.isfinite(out).all()
    expected = _cam()(x)
    torch.testing.assert_close(out.float(), expected, rtol=1e-2, atol=1e-2)
