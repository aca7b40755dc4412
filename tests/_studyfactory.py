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
) -> int:
    trial = study.ask()
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
