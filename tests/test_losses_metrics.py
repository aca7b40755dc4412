"""Every loss and metric against a value computed by hand on a tiny example; HD95 and AUC also
against independent brute-force computations on random shapes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from trainers import DataError, create_loss, evaluate, evaluate_metrics, segmentation_metrics
from trainers._metrics import foreground_dice, roc_auc

LN3 = math.log(3.0)
CE = (-math.log(0.75) - math.log(0.25)) / 2  # two pixels: truth 1 at p=0.75, truth 0 at p(0)=0.25


def two_pixels_softmax() -> tuple[torch.Tensor, torch.Tensor]:
    """Two pixels, both with p(class 1) = 0.75; the first is class 1, the second class 0."""
    logits = torch.tensor([[0.0, 0.0], [LN3, LN3]]).reshape(1, 2, 1, 2)
    labels = torch.tensor([1, 0]).reshape(1, 1, 1, 2)
    return logits, labels


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # per channel 1 - 2Σpg/(Σp+Σg): class 1: 1 - 1.5/2.5; class 0: 1 - 0.5/1.5; averaged
        ("dice", (0.4 + 2 / 3) / 2),
        # the default: the foreground class only (the background's Dice is not rewarded), + cross-entropy
        ("dice_ce", 0.4 + CE),
        ("dice_ce_image", (0.4 + 2 / 3) / 2 + CE),
        # mean over B·C·N elements of -(1-p_t)^2 log p_t at the true channel
        ("focal", (0.25**2 * -math.log(0.75) + 0.75**2 * -math.log(0.25)) / 4),
        # 1 - TP/(TP + 0.3 FP + 0.7 FN) over the foreground channel only, + cross-entropy (no class
        # frequencies given: unweighted)
        ("tversky_ce", (1 - 0.75 / 1.15) + CE),
    ],
)
def test_softmax_losses_by_hand(name: str, expected: float) -> None:
    logits, labels = two_pixels_softmax()
    value = create_loss(name, channels=2)(logits, labels)
    assert float(value) == pytest.approx(expected, abs=1e-4)


def test_dice_ce_takes_one_dice_over_the_batch() -> None:
    """Image A: one foreground pixel at p = 0.75; image B: one background pixel at p(fg) = 0.75.
    Over the batch the foreground Dice is 1 - 2·0.75/(1.5 + 1) = 0.4; per image it would be
    (1 - 1.5/1.75 + 1 - 0/0.75) / 2 ≈ 0.571: an image without foreground would reward predicting
    nothing at all."""
    logits = torch.tensor([[0.0, LN3], [0.0, LN3]]).reshape(2, 2, 1, 1)
    labels = torch.tensor([1, 0]).reshape(2, 1, 1, 1)
    assert float(create_loss("dice_ce", channels=2)(logits, labels)) == pytest.approx(0.4 + CE, abs=1e-4)
    # per image and class: A fg 1 - 1.5/1.75, A bg 1 - 0/0.25, B fg 1 - 0/0.75, B bg 1 - 0.5/1.25
    per_image = ((1 - 1.5 / 1.75) + 1 + 1 + (1 - 0.5 / 1.25)) / 4
    assert float(create_loss("dice_ce_image", channels=2)(logits, labels)) == pytest.approx(per_image + CE, abs=1e-4)


def test_sigmoid_losses_by_hand() -> None:
    logits = torch.tensor([LN3, LN3]).reshape(1, 1, 1, 2)  # p = 0.75 on both pixels
    labels = torch.tensor([1, 0]).reshape(1, 1, 1, 2)
    assert float(create_loss("dice", channels=1)(logits, labels)) == pytest.approx(1 - 1.5 / 2.5, abs=1e-4)
    assert float(create_loss("dice_ce", channels=1)(logits, labels)) == pytest.approx(0.4 + CE, abs=1e-4)
    model = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.fill_(5.0)  # biases are not penalised
    loss = create_loss("bce_l2", channels=1, model=model)
    assert float(loss(logits, labels).detach()) == pytest.approx(CE + 5e-5 * 4.0, abs=1e-6)
    heavy = create_loss("bce_l2", channels=1, model=model, l2_weight=1.0)  # AF-Net's printed λ
    assert float(heavy(logits, labels).detach()) == pytest.approx(CE + 4.0, abs=1e-6)
    value = loss(model(torch.ones(1, 1, 1, 2)), labels)
    value.backward()  # the penalty reaches the weights
    assert model.weight.grad is not None


def test_losses_train_a_tiny_head_in_both_modes() -> None:
    torch.manual_seed(0)
    labels = (torch.rand(2, 1, 8, 8) > 0.5).long()
    for name in ("dice", "dice_ce", "dice_ce_image", "focal", "tversky_ce", "bce_l2"):
        for channels in (1, 3):
            logits = torch.zeros(2, channels, 8, 8, requires_grad=True)
            value = create_loss(name, channels=channels, model=nn.Conv2d(1, 1, 1))(logits, labels)
            value.backward()
            assert torch.isfinite(value) and logits.grad is not None and logits.grad.abs().sum() > 0, (name, channels)


def test_unknown_loss_names_the_choices() -> None:
    with pytest.raises(DataError, match=r"'dice_cee' is not a known loss \(did you mean 'dice_ce'\?\); expected one"):
        create_loss("dice_cee", channels=2)
    with pytest.raises(DataError, match="pass the model"):
        create_loss("bce_l2", channels=1)


# ---------------------------------------------------------------- metrics


def six_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """p(class 1) and truth on a 2x3 image: TP at (0,0), FN at (0,1), FP at (0,2), three TN."""
    p = torch.tensor([[0.9, 0.4, 0.6], [0.2, 0.1, 0.3]])
    probabilities = torch.stack([1 - p, p]).unsqueeze(0)  # (1, 2, 2, 3)
    labels = torch.tensor([[1, 1, 0], [0, 0, 0]]).reshape(1, 1, 2, 3)
    return probabilities, labels


def test_confusion_metrics_and_auc_by_hand() -> None:
    probabilities, labels = six_pixels()
    m = segmentation_metrics(probabilities, labels, hd95=False).mean
    tp, fn, fp, tn = 1, 1, 1, 3
    assert m["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["mcc"] == pytest.approx((tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    # positives score 0.9 and 0.4; negatives 0.6, 0.2, 0.1, 0.3: 7 of 8 pairs ordered right
    assert m["auc"] == pytest.approx(7 / 8)


def test_field_of_view_excludes_pixels_from_every_metric() -> None:
    probabilities, labels = six_pixels()
    fov = torch.ones_like(labels, dtype=torch.bool)
    fov[0, 0, 0, 2] = False  # the false positive lies outside
    m = segmentation_metrics(probabilities, labels, mask=fov, hd95=False).mean
    assert m["dice"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(1.0)
    assert m["specificity"] == pytest.approx(1.0) and m["accuracy"] == pytest.approx(4 / 5)
    assert m["auc"] == pytest.approx(1.0)  # 0.9 and 0.4 both above 0.2, 0.1, 0.3


def test_per_class_and_mean_with_three_classes() -> None:
    labels = torch.tensor([[1, 1, 2, 2]]).reshape(1, 1, 1, 4)
    predicted = torch.tensor([1, 2, 2, 2])
    probabilities = torch.nn.functional.one_hot(predicted, 3).T.float().reshape(1, 3, 1, 4)
    result = segmentation_metrics(probabilities, labels, hd95=False)
    assert set(result.per_class) == {"1", "2"}
    assert result.per_class["1"]["dice"] == pytest.approx(2 / 3)  # TP 1, FN 1
    assert result.per_class["2"]["dice"] == pytest.approx(4 / 5)  # TP 2, FP 1
    assert result.mean["dice"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert result.to_dict()["images"] == 1


def brute_hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    """Edges = the set minus its 4-neighbour erosion; distances between edge points by brute force."""

    def edges(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1)
        eroded = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        return np.argwhere(mask & ~eroded).astype(float)

    a, b = edges(pred), edges(truth)
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95)))


@pytest.mark.parametrize("seed", range(4))
def test_hd95_and_auc_match_independent_computations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:24, :24]

    def blob() -> np.ndarray:
        cy, cx, r = rng.uniform(8, 16), rng.uniform(8, 16), rng.uniform(3, 6)
        return ((yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.6, 1.4)) ** 2) < r**2

    truth, pred = blob(), blob()
    probabilities = torch.from_numpy(np.where(pred, 0.8, 0.2) + rng.uniform(-0.15, 0.15, pred.shape)).float()
    stacked = torch.stack([1 - probabilities, probabilities]).unsqueeze(0)
    labels = torch.from_numpy(truth.astype(np.int64)).reshape(1, 1, 24, 24)
    m = segmentation_metrics(stacked, labels).mean
    assert m["hd95"] == pytest.approx(brute_hd95(pred, truth), abs=1e-4)
    scores = probabilities.numpy()
    pos, neg = scores[truth], scores[~truth]
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(pos, neg)]
    assert m["auc"] == pytest.approx(sum(pairs) / len(pairs), abs=1e-6)


def test_hd95_of_a_missed_structure_is_the_diagonal_and_of_an_absent_one_undefined() -> None:
    labels = torch.zeros(2, 1, 6, 8, dtype=torch.long)
    labels[0, 0, 2:4, 2:4] = 1  # image 0 has a structure, image 1 none
    nothing = torch.zeros(2, 2, 6, 8)
    nothing[:, 0] = 1.0  # predicts background everywhere
    m = segmentation_metrics(nothing, labels).mean
    assert m["hd95"] == pytest.approx(math.hypot(6, 8))  # image 1 does not count
    assert m["dice"] == 0.0
    assert math.isnan(segmentation_metrics(nothing, torch.zeros_like(labels)).mean["hd95"])


def test_bad_shapes_and_labels_are_refused() -> None:
    probabilities, labels = six_pixels()
    with pytest.raises(ValueError, match="labels must be"):
        segmentation_metrics(probabilities, labels[..., :2])
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        segmentation_metrics(probabilities, labels * 3)


def pairwise_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """The share of (positive, negative) pairs ordered right, a tie counting one half (float64, every pair)."""
    pos, neg = scores[truth].astype(np.float64), scores[~truth].astype(np.float64)
    right = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(right / (len(pos) * len(neg)))


@pytest.mark.parametrize("levels", [3, 11, None])  # heavy ties, some ties, none
def test_auc_counts_ties_as_one_half_like_the_pairwise_definition(levels: int | None) -> None:
    rng = np.random.default_rng(levels or 0)
    truth = rng.uniform(size=(3, 17, 19)) < 0.3
    raw = np.where(truth, 0.6, 0.4) + rng.normal(0, 0.25, truth.shape)
    scores = np.clip(raw if levels is None else np.round(raw * (levels - 1)) / (levels - 1), 0, 1)
    stacked = torch.from_numpy(np.stack([1 - scores, scores], axis=1)).float()
    labels = torch.from_numpy(truth.astype(np.int64))[:, None]
    expected = pairwise_auc(stacked[:, 1].numpy(), truth)
    assert segmentation_metrics(stacked, labels, hd95=False).mean["auc"] == pytest.approx(expected, abs=1e-12)
    assert roc_auc(stacked[:, 1].flatten(), labels.flatten()) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(roc_auc(stacked[:, 1].flatten(), torch.zeros(truth.size)))  # one class only


def naive_dice(probabilities: list[torch.Tensor], labels: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    """Per image and foreground class 2|P∩T| / (|P| + |T|) inside the mask (undefined when both are
    empty), averaged over the images where defined, then over the classes where defined."""
    classes = probabilities[0].shape[0]
    per_class: list[float] = []
    for c in range(1, classes):
        values = []
        for p, y, m in zip(probabilities, labels, masks, strict=True):
            inside = m[0].numpy().astype(bool)
            predicted = (p.numpy().argmax(axis=0) == c) & inside
            truth = (y[0].numpy() == c) & inside
            if predicted.sum() + truth.sum():
                values.append(2.0 * (predicted & truth).sum() / (predicted.sum() + truth.sum()))
        if values:
            per_class.append(float(np.mean(values)))
    return float(np.mean(per_class))


class Fixed(nn.Module):
    """Returns the logits it was given for each input, looked up by the input's first value."""

    def __init__(self, logits: list[torch.Tensor]) -> None:
        super().__init__()
        self.logits = logits
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.logits[int(v)] for v in x[:, 0].flatten(1)[:, 0]])


@pytest.mark.parametrize("same_size", [True, False])
def test_validation_dice_is_the_mean_foreground_dice_over_images_then_classes(same_size: bool) -> None:
    rng = np.random.default_rng(1 if same_size else 2)
    shapes = [(12, 14)] * 4 if same_size else [(12, 14), (9, 16), (12, 14), (7, 7)]
    logits, labels, masks, images = [], [], [], []
    for i, shape in enumerate(shapes):
        y = rng.integers(0, 3, size=shape)
        if i == 1:
            y[y == 2] = 0  # class 2 absent from the reference of one image
        logit = rng.normal(size=(3, *shape)) + 2.0 * np.eye(3)[y].transpose(2, 0, 1)
        if i == 1:
            logit[2] = -9.0  # and from its prediction: undefined there, not 0
        logits.append(torch.from_numpy(logit).float())
        labels.append(torch.from_numpy(y)[None])
        masks.append(torch.from_numpy(rng.uniform(size=shape) < 0.8)[None])
        images.append(torch.full((1, *shape), float(i)))
    model = Fixed(logits)
    probabilities = [torch.softmax(x, dim=0) for x in logits]
    expected = naive_dice(probabilities, labels, masks)
    batch = torch.stack(images) if same_size else images
    got = evaluate(model, batch, torch.stack(labels) if same_size else labels, num_classes=3, masks=masks, batch_size=1)
    assert got == pytest.approx(expected, abs=1e-6)  # MONAI's confusion counts are float32
    full = evaluate_metrics(model, batch, torch.stack(labels) if same_size else labels, masks=masks, batch_size=1)
    assert got == pytest.approx(full.mean["dice"], abs=1e-6)


def test_tied_class_probabilities_go_to_the_first_class_as_numpy_argmax_does() -> None:
    """A pixel whose classes tie is predicted as the lowest of them (what the naive reference's
    ``numpy.argmax`` does), in 2D and 3D batches of several classes."""
    rng = np.random.default_rng(7)
    for shape in ((5, 3, 11, 13), (2, 4, 5, 6, 7)):
        probabilities = torch.from_numpy(rng.dirichlet(np.ones(shape[1]), size=(shape[0], *shape[2:]))).float()
        probabilities = probabilities.movedim(-1, 1).contiguous()
        tie = torch.from_numpy(rng.uniform(size=(shape[0], *shape[2:])) < 0.4)
        top = probabilities.max(dim=1).values
        probabilities[:, 1][tie] = top[tie]  # class 1 ties the maximum: class 0 or 1 wins, never 2
        probabilities[:, 0][tie] = top[tie]
        labels = torch.from_numpy(rng.integers(0, shape[1], size=(shape[0], 1, *shape[2:])))
        masks = torch.ones_like(labels, dtype=torch.bool)
        per_image = foreground_dice(probabilities, labels, mask=masks)
        got = float(torch.nanmean(torch.nanmean(per_image, dim=0)))
        expected = naive_dice(list(probabilities), list(labels), list(masks))
        assert got == pytest.approx(expected, abs=1e-6), shape
