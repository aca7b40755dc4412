"""The MONAI train/validate loop: it learns, it reports, and its score is reproducible."""

from __future__ import annotations

import pytest
import torch

from search_spaces import ArchSpec, AttentionSpec, build_model
from trainers import (
    METRIC_NAMES,
    DataError,
    SegmentationData,
    SyntheticConfig,
    TrainConfig,
    evaluate,
    init_head_prior,
    make_optimizer,
    make_schedule,
    make_synthetic,
    train,
)


def test_training_learns_and_reports_every_epoch() -> None:
    torch.set_num_threads(1)
    data = make_synthetic(SyntheticConfig(n_train=48, n_val=16, size=32, seed=0))
    spec = ArchSpec(channels=(8, 16, 32), attention=AttentionSpec("joint", (), (("skip", (1,)),)))
    model = build_model(spec)
    untrained = evaluate(model, data.val_images, data.val_labels, num_classes=2)
    reports: list[tuple[int, dict]] = []
    result = train(model, data, TrainConfig(epochs=4, batch_size=8), report=lambda e, m: reports.append((e, dict(m))))
    assert [e for e, _ in reports] == [1, 2, 3, 4]
    assert set(reports[0][1]) == {"loss", "val_dice", "best_dice"}
    assert reports[-1][1]["loss"] < reports[0][1]["loss"]
    assert result.best_dice == max(m["val_dice"] for _, m in reports)
    assert result.best_dice > untrained + 0.1
    # The best weights reproduce the best Dice exactly.
    fresh = build_model(spec)
    fresh.load_state_dict(result.best_state)
    again = evaluate(fresh, data.val_images, data.val_labels, num_classes=2)
    assert abs(again - result.best_dice) < 1e-6
    # Every metric is measured on the best weights; its Dice is the same number by another path.
    assert result.metrics is not None and set(result.metrics.mean) == set(METRIC_NAMES)
    assert result.metrics.mean["dice"] == pytest.approx(result.best_dice, abs=1e-6)
    assert 0.5 < result.metrics.mean["auc"] <= 1.0 and result.metrics.mean["hd95"] > 0


@pytest.mark.parametrize(
    ("optimizer", "schedule", "loss", "head"),
    [
        ("sgd", "poly", "bce_l2", 1),
        ("adam", "step", "tversky_ce", 2),
        ("adamw", "cosine", "focal", 2),
        ("adamw", "cosine", "dice", 1),
    ],
)
def test_every_optimizer_schedule_and_loss_trains(optimizer: str, schedule: str, loss: str, head: int) -> None:
    torch.set_num_threads(1)
    data = make_synthetic(SyntheticConfig(n_train=8, n_val=4, size=32, seed=2))
    model = build_model(ArchSpec(channels=(8, 16), out_channels=head))
    config = TrainConfig(epochs=2, batch_size=4, optimizer=optimizer, schedule=schedule, loss=loss, grad_clip=1.0)
    result = train(model, data, config)
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert result.metrics is not None and 0.0 <= result.metrics.mean["dice"] <= 1.0


def test_schedules_follow_their_papers() -> None:
    def lrs(schedule: str, steps: int = 10, **kw: object) -> list[float]:
        config = TrainConfig(lr=1.0, schedule=schedule, **kw)  # type: ignore[arg-type]
        optimizer = make_optimizer(torch.nn.Linear(1, 1), config)
        sched = make_schedule(optimizer, config, steps)
        out = []
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            sched.step()
        return out

    assert lrs("poly")[3] == pytest.approx((1 - 3 / 10) ** 0.9)  # AF-Net: lr·(1 - it/max)^0.9
    # MPU-Net: halved every 100 of 600 passes, i.e. every sixth of the run: five halvings in any budget.
    assert lrs("step", steps=12, warmup_fraction=0.0) == [2.0**-k for k in range(6) for _ in range(2)]
    assert lrs("step", steps=600, warmup_fraction=0.0)[::100] == pytest.approx([2.0**-k for k in range(6)])
    assert lrs("step", step_fraction=0.4, warmup_fraction=0.0) == [1.0] * 4 + [0.5] * 4 + [0.25] * 2
    cosine = lrs("cosine", warmup_fraction=0.0)
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.5) and cosine[-1] < 0.05
    # Linear warm-up from lr/100 over the first 10% of 20 steps, then the cosine over the other 18.
    warm = lrs("cosine", steps=20, warmup_fraction=0.1)
    assert warm[:3] == pytest.approx([0.01, 0.505, 1.0])
    assert warm[2 + 9] == pytest.approx(0.5) and warm[-1] < 0.02
    assert lrs("step", steps=6, step_fraction=0.5, warmup_fraction=0.34)[2:] == pytest.approx([1.0, 1.0, 0.5, 0.5])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("loss", "dice_cee", "train.loss: 'dice_cee' is not valid; expected one of dice, dice_ce"),
        ("optimizer", "lion", "train.optimizer: 'lion' is not valid; expected one of adamw, adam, sgd"),
        ("schedule", "linear", "train.schedule: 'linear' is not valid; expected one of cosine, poly, step"),
        ("grad_clip", 0.0, "train.grad_clip: 0.0 is not valid"),
        ("step_fraction", 0, "train.step_fraction: 0 is not valid; expected a fraction in (0, 1]"),
        ("l2_weight", -1.0, "train.l2_weight: -1.0 is not valid; expected a number ≥ 0"),
        ("warmup_fraction", 1.0, "train.warmup_fraction: 1.0 is not valid; expected a fraction"),
    ],
)
def test_bad_training_options_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_training_is_deterministic_for_a_seed() -> None:
    torch.set_num_threads(1)
    data = make_synthetic(SyntheticConfig(n_train=16, n_val=8, size=32, seed=1))
    spec = ArchSpec(channels=(8, 16))
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(spec)
        runs.append(train(model, data, TrainConfig(epochs=2, seed=3)).history)
    assert runs[0] == runs[1]


def test_constant_predictor_scores_zero() -> None:
    data = make_synthetic(SyntheticConfig(n_train=1, n_val=8, size=32))

    class Background(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(x.shape[0], 2, *x.shape[2:])
            out[:, 0] = 1.0
            return out

    assert evaluate(Background(), data.val_images, data.val_labels, num_classes=2) == 0.0


def test_devices_are_chosen_honestly() -> None:
    from trainers import resolve_device

    assert resolve_device(TrainConfig(device="cpu")).type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(TrainConfig()).type == expected  # auto
    with pytest.raises(DataError, match=r"train\.device: 'tpu' is not valid; expected auto, cpu or cuda"):
        TrainConfig(device="tpu")
    if not torch.cuda.is_available():
        data = make_synthetic(SyntheticConfig(n_train=2, n_val=2, size=32))
        with pytest.raises(DataError, match="'cuda' was asked for but no CUDA device is available"):
            train(build_model(ArchSpec(channels=(8, 16))), data, TrainConfig(epochs=1, device="cuda"))


def test_the_head_starts_at_the_class_prior() -> None:
    labels = [torch.tensor([[0, 0, 0, 0, 0, 0, 1, 2]]), torch.tensor([[0, 0, 0, 0, 0, 0, 0, 1]])]  # 13/16, 2/16, 1/16
    images = [torch.zeros(1, 8), torch.zeros(1, 8)]
    data = SegmentationData(images, labels, images, labels, num_classes=3)
    softmax = build_model(ArchSpec(in_channels=1, out_channels=3, channels=(4, 8)))
    assert init_head_prior(softmax, data)
    expected = torch.log(torch.tensor([13 / 16, 2 / 16, 1 / 16]))
    assert torch.allclose(softmax.head.bias, expected)
    assert torch.allclose(torch.softmax(softmax.head.bias, 0), torch.tensor([13 / 16, 2 / 16, 1 / 16]))
    binary = SegmentationData(images, [(lbl > 0).long() for lbl in labels], images, labels, num_classes=2)
    sigmoid = build_model(ArchSpec(in_channels=1, out_channels=1, channels=(4, 8)))
    assert init_head_prior(sigmoid, binary)
    assert torch.allclose(torch.sigmoid(sigmoid.head.bias), torch.tensor([3 / 16]))
    headless = torch.nn.Conv2d(1, 3, 1)
    before = headless.bias.detach().clone()
    assert not init_head_prior(headless, data) and torch.equal(headless.bias, before)
    mismatched = build_model(ArchSpec(in_channels=1, out_channels=4, channels=(4, 8)))
    assert not init_head_prior(mismatched, data)


def test_an_absent_class_gets_a_floored_prior_not_minus_infinity() -> None:
    labels = [torch.zeros(1, 4, 4, dtype=torch.long)]
    images = [torch.zeros(1, 4, 4)]
    model = build_model(ArchSpec(in_channels=1, out_channels=2, channels=(4, 8)))
    assert init_head_prior(model, SegmentationData(images, labels, images, labels, num_classes=2))
    assert torch.isfinite(model.head.bias).all() and float(model.head.bias[1]) == pytest.approx(
        float(torch.log(torch.tensor(1e-4)))
    )


def test_the_automatic_head_prior_is_for_rare_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import trainers._loop as loop

    calls: list[int] = []
    monkeypatch.setattr(loop, "init_head_prior", lambda model, data, frequencies=None: calls.append(1) or True)
    common = make_synthetic(SyntheticConfig(n_train=2, n_val=2, size=32))  # ~12% foreground
    labels = torch.zeros_like(common.train_labels)
    labels[:, :, :4, :4] = 1  # 1.6% foreground
    rare = dataclasses.replace(common, train_labels=labels)
    spec = ArchSpec(channels=(4, 8))
    for data, mode, expected in ((common, "auto", 0), (rare, "auto", 1), (common, "on", 1), (rare, "off", 0)):
        calls.clear()
        train(build_model(spec), data, TrainConfig(epochs=1, head_prior=mode))
        assert len(calls) == expected, (mode, expected)
    with pytest.raises(DataError, match=r"train\.head_prior: 'yes' is not valid; expected one of auto, on, off"):
        TrainConfig(head_prior="yes")
