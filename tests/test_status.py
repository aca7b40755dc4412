"""``nas status``: counts, hypervolume and the Pareto table, or every trial as CSV/JSON via pandas."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from nas.cli import main
from studies import open_storage, pareto_records, records_frame, state_counts, trial_records
from tests._studyfactory import make_rich_study


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('status') / 'nas.db'}"
    make_rich_study(open_storage(url, create=True), "s", 60, seed=3)
    return url


def test_the_table_shows_counts_hypervolume_and_the_front(study_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "s", "--storage", study_url]) == 0
    out = capsys.readouterr().out
    records = trial_records_of(study_url)
    assert f"study s: {len(records)} trials" in out
    assert "hypervolume " in out and "Dice x GFLOPs" in out
    assert f"Pareto set ({len(pareto_records(records))} of" in out


def trial_records_of(url: str) -> list:
    import optuna

    return trial_records(optuna.load_study(study_name="s", storage=open_storage(url, create=False)))


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_hold_every_trial_with_the_spec_flattened(
    study_url: str, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "s", "--storage", study_url, "--format", fmt]) == 0
    text = capsys.readouterr().out
    frame = pd.read_csv(io.StringIO(text)) if fmt == "csv" else pd.DataFrame(json.loads(text))
    records = trial_records_of(study_url)
    assert len(frame) == len(records) and list(frame["number"]) == sorted(r.number for r in records)
    assert frame["state"].value_counts().to_dict() == state_counts(records)
    assert int(frame["pareto"].sum()) == len(pareto_records(records))
    assert {"spec.backbone", "spec.channels", "attention.block", "placement.skip", "dice", "gflops"} <= set(frame)
    complete = frame[frame["state"] == "COMPLETE"]
    assert complete["dice"].notna().all() and complete["spec.channels"].str.fullmatch(r"\d+(-\d+)+").all()
    by_number = {r.number: r for r in records}
    for _, row in complete.head(5).iterrows():
        record = by_number[int(row["number"])]
        assert row["dice"] == pytest.approx(record.dice) and row["attention.block"] == record.spec["attention"]["block"]


def test_a_composition_flattens_its_options_and_an_empty_study_has_the_base_columns() -> None:
    from studies import flatten_spec

    flat = flatten_spec(
        {
            "schema_version": 1,
            "backbone": "unet",
            "channels": [8, 16, 32],
            "attention": {
                "block": "compose",
                "options": {"a": "pwa", "b": "sa", "arrangement": "parallel"},
                "placement": {"skip": [0, 1], "bottleneck": [2]},
            },
        }
    )
    assert flat == {
        "spec.backbone": "unet",
        "spec.channels": "8-16-32",
        "attention.block": "compose",
        "attention.a": "pwa",
        "attention.arrangement": "parallel",
        "attention.b": "sa",
        "placement.bottleneck": "2",
        "placement.skip": "0-1",
    }
    empty = records_frame([])
    assert empty.empty and {"number", "state", "pareto", "dice", "gflops", "seed", "orphaned"} <= set(empty.columns)
    mpu = flatten_spec(
        {
            "backbone": "unet",
            "attention": {"block": "pam", "options": {}, "placement": {"bottleneck": [2]}},
            "extra_attention": [{"block": "ag", "options": {}, "placement": {"skip": [0, 1]}}],
        }
    )
    assert mpu["attention.block"] == "pam" and mpu["extra.block"] == "ag" and mpu["extra_placement.skip"] == "0-1"


def test_an_unknown_format_is_one_line(study_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["status", "s", "--storage", study_url, "--format", "xlsx"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'xlsx'" in err and "Traceback" not in err
