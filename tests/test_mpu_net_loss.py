"""MPU-Net's loss (eq. 18-19) and AF-Net's BCE + L2 against float64 references written from the papers.

Tversky over the foreground classes only (α = 0.3 on false positives, β = 0.7 on false negatives),
class-balanced cross-entropy, the sum over deep-supervision outputs; λ of BCE + L2 replaces the
optimiser's weight decay.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainers import TrainConfig, create_loss, make_optimizer

ALPHA, BETA = 0.3, 0.7
SMOOTH = 1e-5  # MONAI's smooth_nr = smooth_dr


def reference_tversky_ce(logits: torch.Tensor, labels: torch.Tensor, frequencies: torch.Tensor | None) -> float:
    """Naive form: soft counts over the whole batch, each foreground class, averaged; CE weighted by
    1/frequency and normalised by the weights of the voxels' true classes."""
    logits, labels = logits.double(), labels[:, 0].long()
    channels = logits.shape[1]
    if channels == 1:
        p_fg = torch.sigmoid(logits[:, 0])
        probabilities = torch.stack([1 - p_fg, p_fg], dim=1)
    else:
        probabilities = torch.softmax(logits, dim=1)
    classes = probabilities.shape[1]
    terms = []
    for c in range(1, classes):
        p, g = probabilities[:, c], (labels == c).double()
        tp, fp, fn = (p * g).sum(), (p * (1 - g)).sum(), ((1 - p) * g).sum()
        terms.append(1 - (tp + SMOOTH) / (tp + ALPHA * fp + BETA * fn + SMOOTH))
    tversky = sum(terms) / len(terms)
    log_p = torch.log(probabilities.gather(1, labels[:, None]))[:, 0]
    weights = torch.ones(classes, dtype=torch.float64) if frequencies is None else 1 / frequencies.double()
    w = weights[labels]
    ce = -(w * log_p).sum() / w.sum()
    return float(tversky + ce)


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("balanced", [False, True])
def test_tversky_ce_equals_the_foreground_reference(channels: int, balanced: bool) -> None:
    generator = torch.Generator().manual_seed(channels)
    logits = torch.randn(2, channels, 6, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, max(2, channels), (2, 1, 6, 5), generator=generator)
    frequencies = torch.tensor([0.8, 0.15, 0.05][: max(2, channels)], dtype=torch.float64) if balanced else None
    if frequencies is not None:
        frequencies = frequencies / frequencies.sum()
    value = create_loss("tversky_ce", channels=channels, frequencies=frequencies)(logits, labels)
    assert float(value) == pytest.approx(reference_tversky_ce(logits, labels, frequencies), rel=1e-9, abs=1e-9)


def test_tversky_penalises_a_missed_voxel_more_than_a_false_alarm() -> None:
    """Ten foreground and ten background pixels; two foreground pixels missed (FN) or two background
    pixels flagged (FP), hard predictions. Foreground-only Tversky: 1 − 8/9.4 against 1 − 10/10.6, a
    ratio of 2.63. With the background channel averaged in, FN and FP swap roles there and the two
    cases cost the same (ratio 1): the asymmetry MPU-Net chose the loss for is gone."""
    labels = torch.cat([torch.ones(10), torch.zeros(10)]).long().reshape(1, 1, 4, 5)

    def hard(foreground: torch.Tensor) -> torch.Tensor:  # two-channel logits, p ≈ 0 or 1
        return torch.stack([-20 * (2 * foreground - 1), 20 * (2 * foreground - 1)], dim=0)[None].double()

    missed = labels[0, 0].clone().double().flatten()
    missed[:2] = 0
    flagged = labels[0, 0].clone().double().flatten()
    flagged[10:12] = 1
    loss = create_loss("tversky_ce", channels=2)

    def tversky_part(prediction: torch.Tensor) -> float:
        logits = hard(prediction.reshape(4, 5))
        ce = nn.functional.cross_entropy(logits, labels[:, 0])
        return float(loss(logits, labels) - ce)

    fn_cost, fp_cost = tversky_part(missed), tversky_part(flagged)
    assert fn_cost == pytest.approx(1 - 8 / 9.4, abs=1e-6)
    assert fp_cost == pytest.approx(1 - 10 / 10.6, abs=1e-6)
    assert fn_cost / fp_cost > 2.5


def test_deep_supervision_sums_the_loss_over_the_scales_with_halving_weights() -> None:
    """Three outputs at full, 1/2 and 1/4 resolution: weights 4/7, 2/7, 1/7 (nnU-Net's 1, 1/2, 1/4
    normalised); labels down-sampled by taking every 2nd / 4th pixel (nearest)."""
    generator = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 2, (2, 1, 8, 8), generator=generator)
    outputs = tuple(torch.randn(2, 2, 8 // f, 8 // f, generator=generator, dtype=torch.float64) for f in (1, 2, 4))
    plain = create_loss("dice_ce", channels=2)
    expected = sum(
        w * plain(out, labels[:, :, ::f, ::f])
        for w, out, f in zip((4 / 7, 2 / 7, 1 / 7), outputs, (1, 2, 4), strict=True)
    )
    torch.testing.assert_close(plain(outputs, labels), expected)
    torch.testing.assert_close(plain(outputs[0], labels), plain((outputs[0],), labels))


def test_bce_l2_switches_the_optimisers_weight_decay_off() -> None:
    model = nn.Conv2d(1, 1, 1)
    for optimizer in ("adamw", "adam", "sgd"):
        penalised = make_optimizer(model, TrainConfig(loss="bce_l2", optimizer=optimizer, weight_decay=1e-2))
        assert penalised.param_groups[0]["weight_decay"] == 0.0
        other = make_optimizer(model, TrainConfig(loss="dice_ce", optimizer=optimizer, weight_decay=1e-2))
        assert other.param_groups[0]["weight_decay"] == 1e-2
