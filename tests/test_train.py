"""The MONAI train/validate loop: it learns, it reports, and its score is reproducible."""

from __future__ import annotations

import torch

from search_spaces import ArchSpec, AttentionSpec, build_model
from trainers import SyntheticConfig, TrainConfig, evaluate, make_synthetic, train


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
