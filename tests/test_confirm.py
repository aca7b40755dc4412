"""The confirm stage: which architectures it trains again (front members and their no-attention
twins, fresh seeds), and the whole stage through the CLI the way a user runs the main job."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from nas._config import DEMO_SPACE
from nas._confirm import ConfirmPoint, confirm_seeds, plan_confirm
from search_spaces import ArchSpec, SampleContext, enumerate_specs
from studies import (
    ATTR_HV_REFERENCE,
    CONFIRM_STAGE,
    create_study,
    load_study,
    open_storage,
    spent_trials,
    trial_records,
)

CONTEXT = SampleContext(spatial_dims=2, in_channels=1, out_channels=2)


def _add(study: optuna.Study, params: dict, spec: ArchSpec, dice: float, gflops: float) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions={k: CategoricalDistribution([v]) for k, v in params.items()},
            values=[dice, gflops],
            user_attrs={
                "spec": spec.to_dict(),
                "spec_hash": spec.spec_hash(),
                "label": spec.short_label(),
                "flops": int(gflops * 1e9),
                "epochs": 10,
                "dice": dice,
            },
        )
    )


def _plan(study: optuna.Study) -> list[ConfirmPoint]:
    """What the confirm stage would train: 3 members of the demo space, seeds 1 and 2."""
    return plan_confirm(
        study, trial_records(study), space=DEMO_SPACE, context=CONTEXT, objectives=("dice", "gflops"),
        members=3, seeds=[1, 2],
    )  # fmt: skip


def test_front_members_and_their_no_attention_twins_are_planned_with_fresh_seeds() -> None:
    study = create_study(optuna.storages.InMemoryStorage(), "plan")
    specs = enumerate_specs(DEMO_SPACE, CONTEXT)
    pwa = next((p, s) for p, s in specs if s.attention.block == "pwa" and s.channels[0] == 16)
    sa = next((p, s) for p, s in specs if s.attention.block == "sa" and s.channels[0] == 8)
    _add(study, *pwa, dice=0.9, gflops=2.0)
    _add(study, *sa, dice=0.8, gflops=1.0)
    points = _plan(study)
    for member in (pwa[1], sa[1]):
        # The twin, written independently: the member's backbone, depth and widths, no attention.
        twin = ArchSpec.from_dict({**member.to_dict(), "attention": {"block": "none"}})
        assert {(p.spec_hash, p.seed, p.role) for p in points} >= {
            (member.spec_hash(), 1, "member"),
            (member.spec_hash(), 2, "member"),
            (twin.spec_hash(), 1, "twin"),
            (twin.spec_hash(), 2, "twin"),
        }
    assert len(points) == 8
    assert confirm_seeds([0], 3) == [1, 2, 3]
    assert confirm_seeds([0, 1, 2], 2) == [3, 4]


def test_a_dominated_architecture_is_not_confirmed() -> None:
    study = create_study(optuna.storages.InMemoryStorage(), "dominated")
    specs = enumerate_specs(DEMO_SPACE, CONTEXT)
    small = next((p, s) for p, s in specs if s.attention.block == "none" and s.channels[0] == 8)
    big = next((p, s) for p, s in specs if s.attention.block == "sa" and s.channels[0] == 16)
    _add(study, *small, dice=0.9, gflops=1.0)
    _add(study, *big, dice=0.8, gflops=3.0)  # dominated: more GFLOPs, less Dice
    points = _plan(study)
    assert {p.spec_hash for p in points} == {small[1].spec_hash()}


@pytest.mark.slow
def test_the_cli_search_confirms_its_front_and_shows_the_verdict(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    command = [
        sys.executable, "-m", "nas", "search", "--trials", "4", "--epochs", "2", "--image-size", "32",
        "--train-images", "8", "--val-images", "8", "--storage", db, "--out-dir", str(tmp_path / "runs"),
        "--study", "confirmed", "--set", "confirm.members=2", "--set", "confirm.seeds=2",
        "--set", "confirm.min_trials=4",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    study = load_study(open_storage(db, create=False), "confirmed")
    records = trial_records(study)
    confirm = [r for r in records if r.stage == CONFIRM_STAGE]
    assert spent_trials(records) == 4  # the search's budget is the search's alone
    assert confirm and spent_trials(records, CONFIRM_STAGE) == len(confirm)
    assert {r.seed for r in confirm} == {1, 2}  # fresh seeds: the search trained with seed 0
    assert all(r.state == "COMPLETE" and r.epochs == 2 for r in confirm)
    searched = {r.spec_hash for r in records if r.stage != CONFIRM_STAGE and r.state == "COMPLETE"}
    assert {r.spec_hash for r in confirm} - searched <= {r.spec_hash for r in confirm if r.block == "none"}
    assert "Front over architectures" in run.stdout and "confirmed" in run.stdout
    # The hypervolume never falls: its reference is fixed in the study before any trial.
    assert study.user_attrs[ATTR_HV_REFERENCE]["gflops"] > 0
    hv = [float(v) for v in re.findall(r"· HV ([0-9.e+-]+) ·", run.stdout)]
    assert len(hv) == len(records) and hv == sorted(hv), hv
    # Resuming a confirmed study trains nothing more.
    again = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(trial_records(load_study(open_storage(db, create=False), "confirmed"))) == len(records)
    status = subprocess.run(
        [sys.executable, "-m", "nas", "status", "confirmed", "--storage", db], capture_output=True, text=True
    )
    assert "95% interval" in status.stdout and "(n 2)" not in status.stderr
    assert json.loads(json.dumps(study.user_attrs["confirm"])) == {"members": 2, "seeds": 2, "min_trials": 4}


def test_the_hypervolume_with_a_fixed_reference_never_falls() -> None:
    from nas.cli._progress import progress_line
    from studies import TrialRecord

    def hv(line: str) -> float:
        return float(re.search(r"HV ([0-9.e+-]+)", line).group(1))  # type: ignore[union-attr]

    # The main job's first trials (before the reference was fixed its line read HV 0.00019, then
    # 0.000084): the second dominates the first, and the moving reference (10% of the spread beyond
    # the worst values seen) closes in on the front.
    points = [(0.1526, 0.0127), (0.3433, 0.0125), (0.2685, 0.0193), (0.2311, 0.0132), (0.36, 0.0126)]
    records = [
        TrialRecord(number=i, state="COMPLETE", values=v, flops=int(v[1] * 1e9), spec_hash=str(i))
        for i, v in enumerate(points)
    ]
    fixed = [hv(progress_line(records[: k + 1], 0, (0.03, 0.0))) for k in range(len(records))]
    assert fixed == sorted(fixed) and fixed[-1] > fixed[0]
    moving = [hv(progress_line(records[: k + 1], 0)) for k in range(len(records))]
    assert moving != sorted(moving)  # what the fixed reference is for
