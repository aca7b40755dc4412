"""A real search: Ray Tune runs the trials, Optuna samples, SQLite records; then status/report/export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.cli import main
from search_spaces import ArchSpec, build_model
from studies import load_study, open_storage, pareto_records, trial_records
from trainers import data_config_from_dict, evaluate, load_data

STUDY = "e2e"


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search")
    storage = f"sqlite:///{root / 'nas.db'}"
    args = [
        "search",
        "--study",
        STUDY,
        "--storage",
        storage,
        "--trials",
        "3",
        "--epochs",
        "1",
        "--train-images",
        "16",
        "--val-images",
        "8",
        "--image-size",
        "32",
        "--out-dir",
        str(root / "runs"),
    ]
    assert main(args) == 0
    return root


def storage_url(root: Path) -> str:
    return f"sqlite:///{root / 'nas.db'}"


def test_three_trials_are_recorded_complete_with_spec_and_cost(searched: Path) -> None:
    study = load_study(open_storage(storage_url(searched), create=False), STUDY)
    records = trial_records(study)
    assert len(records) == 3
    assert all(r.state == "COMPLETE" for r in records)
    for r in records:
        assert r.spec is not None and ArchSpec.from_dict(r.spec).spec_hash() == r.spec_hash
        assert r.flops and r.flops > 0 and r.params and r.params > 0
        assert r.gflops == pytest.approx(r.flops / 1e9)
        assert r.weights_path and Path(r.weights_path).is_file()
        assert len(r.history) == 1
    assert study.metric_names == ["dice", "gflops"]
    assert study.user_attrs["data"]["size"] == 32


def test_status_prints_counts_and_the_pareto_table(searched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", STUDY, "--storage", storage_url(searched)]) == 0
    out = capsys.readouterr().out
    assert "3 trials: COMPLETE 3" in out
    assert "Pareto set" in out and "architecture" in out


def test_report_file_is_written(searched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = searched / "report.html"
    assert main(["report", STUDY, "--storage", storage_url(searched), "-o", str(target)]) == 0
    page = target.read_text()
    assert "<!DOCTYPE html>" in page and "Pareto set" in page
    assert (searched / "runs" / STUDY / "report.html").is_file()  # the search wrote one too


def test_export_reproduces_the_recorded_dice(searched: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = open_storage(storage_url(searched), create=False)
    study = load_study(storage, STUDY)
    trial = pareto_records(trial_records(study))[-1]
    out = searched / "export"
    assert (
        main(
            [
                "export",
                STUDY,
                "--trial",
                str(trial.number),
                "--storage",
                storage_url(searched),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    spec = ArchSpec.from_json((out / "arch.json").read_text())
    model = build_model(spec)
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu"))
    metrics = json.loads((out / "metrics.json").read_text())
    data = load_data(data_config_from_dict(metrics["data"]))
    torch.set_num_threads(metrics["train"]["threads_per_trial"])
    dice = evaluate(
        model,
        data.val_images,
        data.val_labels,
        num_classes=data.num_classes,
        batch_size=metrics["train"]["eval_batch_size"],
    )
    assert abs(dice - trial.dice) < 1e-6
    assert metrics["study"] == STUDY and metrics["trial"] == trial.number
