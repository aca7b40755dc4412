"""Hand-made studies for tests that need trials without running a search."""

from __future__ import annotations

from pathlib import Path

import optuna
import torch

from search_spaces import ArchSpec, AttentionSpec, build_model
from studies import (
    ATTR_BEST_EPOCH,
    ATTR_EPOCHS,
    ATTR_FLOPS,
    ATTR_LABEL,
    ATTR_PARAMS,
    ATTR_SPEC,
    ATTR_SPEC_HASH,
    ATTR_WEIGHTS,
    create_study,
)


def add_trial(
    study: optuna.Study,
    spec: ArchSpec,
    values: tuple[float, float] | None,
    state: optuna.trial.TrialState = optuna.trial.TrialState.COMPLETE,
    weights_dir: Path | None = None,
    attrs: dict[str, object] | None = None,
) -> int:
    trial = study.ask()
    for key, value in (attrs or {}).items():
        trial.set_user_attr(key, value)
    trial.set_user_attr(ATTR_SPEC, spec.to_dict())
    trial.set_user_attr(ATTR_SPEC_HASH, spec.spec_hash())
    trial.set_user_attr(ATTR_LABEL, spec.short_label())
    trial.set_user_attr(ATTR_FLOPS, int((values or (0, 0))[1] * 1e9))
    trial.set_user_attr(ATTR_PARAMS, 1234)
    trial.set_user_attr(ATTR_EPOCHS, 3)
    trial.set_user_attr(ATTR_BEST_EPOCH, 2)
    if weights_dir is not None:
        path = weights_dir / f"w{trial.number}.pt"
        torch.save(build_model(spec).state_dict(), path)
        trial.set_user_attr(ATTR_WEIGHTS, str(path))
    study.tell(trial, list(values) if values and state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return trial.number


def sa_spec(levels: tuple[int, ...] = (0,)) -> ArchSpec:
    return ArchSpec(channels=(8, 16, 32), attention=AttentionSpec("sa", (), (("skip", levels),)))


def make_study(storage: optuna.storages.BaseStorage, name: str, weights_dir: Path | None = None) -> optuna.Study:
    """A study with 4 complete trials (2 on the front), one pruned and one failed."""
    study = create_study(storage, name, attrs={"data": {"kind": "synthetic"}, "input_shape": [1, 64, 64]})
    plain = ArchSpec(channels=(8, 16, 32))
    add_trial(study, plain, (0.50, 0.05), weights_dir=weights_dir)  # front
    add_trial(study, sa_spec(), (0.60, 0.08), weights_dir=weights_dir)  # front
    add_trial(study, sa_spec((1,)), (0.55, 0.09), weights_dir=weights_dir)  # dominated
    add_trial(study, sa_spec((0, 1)), (0.45, 0.10), weights_dir=weights_dir)  # dominated
    add_trial(study, plain, None, state=optuna.trial.TrialState.PRUNED)
    add_trial(study, plain, None, state=optuna.trial.TrialState.FAIL)
    return study


def _spec_pool() -> list[ArchSpec]:
    """Architectures of the kinds a real search records: single blocks, the nine joint variants,
    gates at skips, blocks in the encoder, decoder and bottleneck, two backbones."""
    pool: list[ArchSpec] = []
    for channels in ((8, 16, 32), (16, 32, 64), (16, 32, 64, 128)):
        skips = tuple(range(len(channels) - 1))
        pool.append(ArchSpec(channels=channels))
        for block, options in (("pwa", ()), ("sa", (("similarity", "dot"),)), ("sa", (("similarity", "softmax"),))):
            pool.append(ArchSpec(channels=channels, attention=AttentionSpec(block, options, (("skip", skips),))))
        for arrangement in ("parallel", "sa_first", "pwa_first"):
            for shortcut in ("inside", "outside", "separate"):
                options = (("arrangement", arrangement), ("shortcut", shortcut))
                pool.append(
                    ArchSpec(channels=channels, attention=AttentionSpec("joint", options, (("skip", skips[:1]),)))
                )
        pool.append(ArchSpec(channels=channels, attention=AttentionSpec("ag", (), (("skip", skips),))))
        pool.append(ArchSpec(channels=channels, attention=AttentionSpec("se", (), (("encoder", skips),))))
        pool.append(ArchSpec(channels=channels, attention=AttentionSpec("cbam", (), (("decoder", skips[-1:]),))))
        bottom = (len(channels) - 1,)
        pool.append(
            ArchSpec(
                channels=channels,
                backbone="resunet",
                attention=AttentionSpec("pam", (), (("bottleneck", bottom), ("skip", skips[:1]))),
            )
        )
    return pool


def synthetic_trials(n: int, *, seed: int = 0, epochs: int = 10) -> list[optuna.trial.FrozenTrial]:
    """``n`` finished trials as a search writes them (for dashboard tests and the 5,000-trial benchmark).

    About 80% COMPLETE, 10% PRUNED with a partial learning curve, 7% FAIL with an error text and 3%
    infeasible. GFLOPs grow with width and attention; Dice is noisy around a small attention gain.
    """
    import datetime
    import random

    from optuna.distributions import IntDistribution

    rng = random.Random(seed)
    pool = _spec_pool()
    dicts = [(s.to_dict(), s.spec_hash(), s.short_label()) for s in pool]
    start = datetime.datetime(2026, 11, 1, 12, 0, 0)
    trials = []
    for number in range(n):
        index = rng.randrange(len(pool))
        spec, spec_hash, label = dicts[index]
        width = pool[index].channels[0] * len(pool[index].channels)
        attention = 0.0 if spec["attention"]["block"] == "none" else 0.02 + 0.03 * rng.random()
        gflops = 0.002 * width * (1 + 4 * attention) * (1 + 0.05 * rng.random())
        dice = min(0.95, 0.45 + 0.004 * width + attention + rng.gauss(0, 0.03))
        curve = [round(dice * (1 - 0.6 * 0.7**e) + rng.gauss(0, 0.01), 4) for e in range(epochs)]
        roll = rng.random()
        attrs = {
            "spec": spec,
            "spec_hash": spec_hash,
            "label": label,
            "flops": int(gflops * 1e9),
            "params": 1000 * width,
            "epochs": epochs,
            "peak_memory_mb": round(20 + 3 * width * (1 + 10 * attention), 1),
        }
        values: list[float] | None = None
        if roll < 0.8:
            state = optuna.trial.TrialState.COMPLETE
            values = [max(curve), gflops]
            attrs |= {
                "history": [{"epoch": e + 1, "val_dice": d, "loss": round(1 - d, 4)} for e, d in enumerate(curve)],
                "best_epoch": int(max(range(epochs), key=curve.__getitem__)) + 1,
                "train_seconds": round(5 + width * 0.3, 1),
                "weights_path": f"/nonexistent/trial-{number}.pt",
            }
        elif roll < 0.9:
            state = optuna.trial.TrialState.PRUNED
            attrs["history"] = [{"epoch": e + 1, "val_dice": d} for e, d in enumerate(curve[: 1 + number % 3])]
        elif roll < 0.97:
            state = optuna.trial.TrialState.FAIL
            attrs["error"] = "RuntimeError: loss is NaN at epoch 2\n  File trainers/_loop.py"
        else:
            state = optuna.trial.TrialState.FAIL
            attrs |= {"error": "needs 9000 MB > max_memory_mb 4096", "infeasible": True}
        began = start + datetime.timedelta(seconds=30 * number)
        trials.append(
            optuna.trial.create_trial(
                state=state,
                values=values,
                params={"arch": index},
                distributions={"arch": IntDistribution(0, len(pool) - 1)},
                user_attrs=attrs,
            )
        )
        trials[-1].datetime_start = began
        trials[-1].datetime_complete = began + datetime.timedelta(seconds=20)
    return trials


def make_rich_study(storage: optuna.storages.BaseStorage, name: str, n: int, *, seed: int = 0) -> optuna.Study:
    """A study of ``n`` synthetic trials of every state (see ``synthetic_trials``)."""
    study = create_study(storage, name, attrs={"data": {"kind": "synthetic"}, "input_shape": [1, 64, 64]})
    study.add_trials(synthetic_trials(n, seed=seed))
    return study
