"""The built-in synthetic task: seeded, split, and not solvable by a threshold."""

from __future__ import annotations

import pytest
import torch

from trainers import DataError, SyntheticConfig, load_data, make_synthetic


def test_same_seed_same_data_and_split_sizes() -> None:
    a = make_synthetic(SyntheticConfig(n_train=6, n_val=3, size=32, seed=4))
    b = make_synthetic(SyntheticConfig(n_train=6, n_val=3, size=32, seed=4))
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.val_labels, b.val_labels)
    assert a.train_images.shape == (6, 1, 32, 32) and a.val_images.shape == (3, 1, 32, 32)
    assert a.train_labels.dtype == torch.int64 and set(a.train_labels.unique().tolist()) <= {0, 1}
    c = make_synthetic(SyntheticConfig(n_train=6, n_val=3, size=32, seed=5))
    assert not torch.equal(a.train_images, c.train_images)


def test_train_and_val_do_not_overlap() -> None:
    data = make_synthetic(SyntheticConfig(n_train=8, n_val=8, size=32))
    flat_train = data.train_images.flatten(1)
    flat_val = data.val_images.flatten(1)
    assert torch.cdist(flat_val, flat_train).min() > 1.0


def test_images_are_normalised_and_masks_are_sparse_but_present() -> None:
    data = make_synthetic(SyntheticConfig(n_train=16, n_val=4))
    means = data.train_images.mean(dim=(1, 2, 3))
    assert means.abs().max() < 1e-4
    fractions = data.train_labels.float().mean(dim=(1, 2, 3))
    assert (fractions > 0.01).all() and (fractions < 0.5).all()


def test_no_global_threshold_segments_it() -> None:
    """Context matters: the best single intensity threshold (either polarity) scores a low Dice."""
    data = make_synthetic(SyntheticConfig(n_train=1, n_val=48, seed=2))
    x, y = data.val_images.flatten(), data.val_labels.flatten().bool()
    best = 0.0
    for q in torch.linspace(0.01, 0.99, 99):
        t = torch.quantile(x[::5], q)
        for pred in (x > t, x < t):
            best = max(best, float(2 * (pred & y).sum() / (pred.sum() + y.sum())))
    assert best < 0.4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"n_train": 0}, "data.n_train"), ({"size": 40}, "data.size"), ({"n_val": -1}, "data.n_val")],
)
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(DataError, match=field):
        load_data(SyntheticConfig(**kwargs))


def test_volumes_in_3d_are_seeded_normalised_sparse_and_not_a_threshold() -> None:
    config = SyntheticConfig(n_train=2, n_val=12, seed=2, spatial_dims=3)
    data = make_synthetic(config)
    assert config.size == 32 and data.spatial_dims == 3
    assert data.train_images.shape == (2, 1, 32, 32, 32) and data.val_labels.shape == (12, 1, 32, 32, 32)
    assert torch.equal(data.val_images, make_synthetic(config).val_images)
    assert data.val_images.mean(dim=(1, 2, 3, 4)).abs().max() < 1e-4
    fractions = data.val_labels.float().mean(dim=(1, 2, 3, 4))
    assert (fractions > 0.003).all() and (fractions < 0.3).all()
    x, y = data.val_images.flatten(), data.val_labels.flatten().bool()
    best = 0.0
    for q in torch.linspace(0.01, 0.99, 99):
        t = torch.quantile(x[::37], q)
        for pred in (x > t, x < t):
            best = max(best, float(2 * (pred & y).sum() / (pred.sum() + y.sum())))
    assert best < 0.4


def test_default_size_follows_the_dimensions_and_bad_dimensions_are_named() -> None:
    assert SyntheticConfig().size == 64 and SyntheticConfig(spatial_dims=3).size == 32
    assert SyntheticConfig.from_dict(SyntheticConfig(spatial_dims=3).to_dict()) == SyntheticConfig(spatial_dims=3)
    with pytest.raises(DataError, match=r"data\.spatial_dims: 4 .* expected 2 or 3"):
        SyntheticConfig(spatial_dims=4)
