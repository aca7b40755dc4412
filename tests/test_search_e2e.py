"""A real search: Ray Tune runs the trials, Optuna samples, SQLite records; then status/report/export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas import MAX_SKIPPED_IN_A_ROW
from nas.cli import main
from search_spaces import ArchSpec, build_model
from studies import ATTR_PHASES, load_study, open_storage, pareto_records, trial_records
from trainers import METRIC_NAMES, data_config_from_dict, evaluate, load_data

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
        "--keep-top",
        "0",  # keep the weights of the Pareto set only
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
        on_front = r.number in {p.number for p in pareto_records(records)}
        assert r.weights_path and Path(r.weights_path).is_file() == on_front  # the keep policy ran
        assert (r.number in study.user_attrs.get("pruned_weights", [])) == (not on_front)
        assert len(r.history) == 1
        assert r.metrics is not None and set(r.metrics["mean"]) == set(METRIC_NAMES)
        assert r.metrics["mean"]["dice"] == pytest.approx(r.dice, abs=1e-6)  # the same weights, two paths
        assert r.latency_ms is not None and r.latency_ms > 0  # measured, next to the estimates
        assert r.measured_memory_mb is not None and r.measured_memory_mb > 0
    assert study.metric_names == ["dice", "gflops"]
    assert study.user_attrs["data"]["size"] == 32


WORKER_PHASES = {"build", "cost", "setup", "steps", "validation", "report", "val_metrics", "test_metrics"}
WORKER_PHASES |= {"latency", "peak_memory", "save"}


def test_every_trained_trial_records_where_its_time_went(searched: Path) -> None:
    """The phases a trial's slot spent (issue 15): the worker's own, and the driver's view of Ray's
    start and return; together inside the trial's recorded duration, the loop's equal to train_seconds."""
    study = load_study(open_storage(storage_url(searched), create=False), STUDY)
    for trial in study.trials:
        phases = trial.user_attrs[ATTR_PHASES]
        assert set(phases) == WORKER_PHASES | {"start", "return"}, phases
        assert all(value >= 0 for value in phases.values())
        loop = phases["steps"] + phases["validation"] + phases["report"]
        assert loop == pytest.approx(trial.user_attrs["train_seconds"], abs=2e-3)
        worker = sum(phases[name] for name in WORKER_PHASES)
        assert worker > loop and phases["cost"] > 0 and phases["val_metrics"] > 0 and phases["peak_memory"] > 0
        # Asked for -> told: it holds the trial's whole slot time.
        assert phases["start"] + worker + phases["return"] <= trial.duration.total_seconds() + 0.01


def test_tune_writes_each_trials_results_once_and_nothing_nobody_reads(searched: Path) -> None:
    """Every trial's ``result.json`` (Tune's ExperimentAnalysis reads it), but no ``progress.csv`` or
    TensorBoard event file: the driver wrote those between trials, and nothing reads them (issue 15)."""
    ray_dir = searched / "runs" / STUDY / "ray"
    results = sorted(ray_dir.rglob("result.json"))
    assert len(results) == 3 and all(path.read_text().strip() for path in results)
    written = {path.name for path in ray_dir.rglob("*") if path.is_file()}
    assert "progress.csv" not in written and not any(name.startswith("events.out.tfevents") for name in written)


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


def test_a_declared_space_and_a_memory_budget_reach_the_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "space.json"
    space.write_text(
        json.dumps(
            {
                "blocks": ["ag", "compose"],
                "pairs": [["ag", "cca"], ["se", "gff"]],
                "placements": ["skip"],
                "backbones": ["resunet", "denseunet"],
                "depths": [3],
                "base_widths": [8],
            }
        )
    )
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    common = [
        "--storage",
        storage,
        "--epochs",
        "1",
        "--train-images",
        "8",
        "--val-images",
        "4",
        "--image-size",
        "32",
        "--out-dir",
        str(tmp_path / "runs"),
        "--space",
        str(space),
    ]
    assert main(["search", "--study", "gated", "--trials", "2", *common]) == 0
    assert main(["search", "--study", "tight", "--trials", "2", "--max-memory-mb", "0.5", *common]) == 0
    opened = open_storage(storage, create=False)
    gated = trial_records(load_study(opened, "gated"))
    assert [r.state for r in gated] == ["COMPLETE", "COMPLETE"]
    assert all(r.spec is not None and r.spec["attention"]["placement"].keys() == {"skip"} for r in gated)
    assert all(r.spec is not None and r.spec["backbone"] in ("resunet", "denseunet") for r in gated)
    tight = trial_records(load_study(opened, "tight"))
    # Nothing fits in 0.5 MiB: every sample is refused untrained until the searcher gives up.
    assert len(tight) == MAX_SKIPPED_IN_A_ROW and {r.state for r in tight} == {"INFEASIBLE"}
    for record in tight:
        assert record.error is not None and "estimated training peak memory" in record.error
        assert "> 0" in record.error and record.weights_path is None and (record.peak_memory_mb or 0) > 0.5
    assert "stopped after 0 of 2 trials" in capsys.readouterr().out


def test_an_exception_inside_a_trial_is_reported_not_raised(tmp_path: Path) -> None:
    """Through a real Tune run: the failure report must satisfy Tune's metric check and carry the error."""
    import ray
    from ray import tune

    from nas import run_trial
    from trainers import SyntheticConfig, TrainConfig

    data = load_data(SyntheticConfig(n_train=2, n_val=2, size=16))
    trainable = tune.with_parameters(
        run_trial, data=data, train_config=TrainConfig(epochs=1), artifact_dir=str(tmp_path), threads=1
    )
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={"spec": {"backbone": "vnet"}, "trial_number": 0},
            tune_config=tune.TuneConfig(metric="dice", mode="max", num_samples=1),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        )
        result = tuner.fit()[0]
    finally:
        ray.shutdown()
    assert result.error is None
    assert result.metrics["failed"] is True
    assert "backbone: 'vnet' is not valid" in result.metrics["error"]


def test_a_search_on_files_records_the_split_and_every_metric(tmp_path: Path) -> None:
    """--data with a folder2d dataset: the same Ray + Optuna path, on files; the split is in the study."""
    from tests.test_sources import make_folder

    make_folder(tmp_path / "lesions", n=8, size=(48, 40))
    (tmp_path / "patients.csv").write_text("case,group\n" + "".join(f"case{i:02d},P{i // 2}\n" for i in range(8)))
    fields = {"kind": "folder2d", "path": "lesions", "size": 32, "groups_file": "patients.csv"}
    (tmp_path / "data.json").write_text(json.dumps(fields))
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    args = ["search", "--study", "files", "--storage", storage, "--trials", "2", "--epochs", "1"]
    assert main([*args, "--data", str(tmp_path / "data.json"), "--out-dir", str(tmp_path / "runs")]) == 0
    study = load_study(open_storage(storage, create=False), "files")
    split = study.user_attrs["split"]
    assert len(split["train"]) + len(split["val"]) == 8 and not set(split["train"]) & set(split["val"])
    groups = study.user_attrs["split_groups"]  # two cases a patient, each patient in one part
    assert sorted(groups["train"] + groups["val"]) == ["P0", "P1", "P2", "P3"]
    assert {f"P{int(c[4:]) // 2}" for c in split["val"]} == set(groups["val"])
    assert study.user_attrs["data"]["path"] == str((tmp_path / "lesions").resolve())
    assert study.user_attrs["input_shape"] == [3, 32, 32]
    for record in trial_records(study):
        assert record.state == "COMPLETE" and record.metrics is not None
        assert set(record.metrics["mean"]) == set(METRIC_NAMES)


def test_a_grid_with_early_stopping_runs_every_architecture_and_prunes_honestly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Grid sampler × replicates through Ray, with ASHA: stopped trials are PRUNED with their curve,
    never on the front; every (architecture, seed) pair runs exactly once."""
    config = tmp_path / "grid.yaml"
    config.write_text(
        f"""
name: grid
storage: sqlite:///{tmp_path / "nas.db"}
data: {{kind: synthetic, size: 32, n_train: 16, n_val: 8}}
space:
  blocks: [none, pwa, joint]
  options: {{joint.similarity: [dot], joint.arrangement: [parallel], joint.shortcut: [inside, outside]}}
  level_choice: all
  depths: [3]
  base_widths: [8]
sampler: {{name: grid, replicates: 2}}
fidelity: {{epochs: 4, grace_period: 1, reduction_factor: 3}}
concurrency: 2
out_dir: {tmp_path / "runs"}
"""
    )
    assert main(["search", str(config)]) == 0
    out = capsys.readouterr().out
    assert "grid sampler, 8 of 8 trials to run" in out and "running " in out and "front " in out
    records = trial_records(load_study(open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=False), "grid"))
    assert len(records) == 8 and {r.state for r in records} <= {"COMPLETE", "PRUNED"}
    assert sorted((r.spec_hash, r.seed) for r in records) == sorted(
        {(r.spec_hash, seed) for r in records for seed in (0, 1)}
    )
    assert len({r.spec_hash for r in records}) == 4
    pruned = [r for r in records if r.state == "PRUNED"]
    assert pruned, "ASHA stopped no trial (reduction factor 3 keeps only the top third at each rung)"
    for record in pruned:
        assert 1 <= len(record.history) < 4 and record.weights_path is None
    front = {r.number for r in pareto_records(records)}
    assert front and not front & {r.number for r in pruned}
    assert all(r.epochs == 4 and len(r.history) == 4 for r in records if r.state == "COMPLETE")


SCHEMA = Path(__file__).parent / "data" / "monai_meta_schema_20240725.json"


def monai_bundle(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_exported_monai_bundle_verifies_offline_and_segments_images(searched: Path, tmp_path: Path) -> None:
    """``verify_metadata`` against MONAI's schema (a shipped copy: nothing is downloaded when the file
    is in place), ``verify_net_in_out``, then ``monai.bundle run`` on a folder of NIfTI images."""
    import nibabel as nib
    import numpy as np

    study = load_study(open_storage(storage_url(searched), create=False), STUDY)
    trial = pareto_records(trial_records(study))[0]
    out = tmp_path / "export"
    assert (
        main(["export", STUDY, "--trial", str(trial.number), "--storage", storage_url(searched), "-o", str(out)]) == 0
    )
    bundle = out / "bundle"
    assert {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} >= {
        "configs/metadata.json",
        "configs/inference.json",
        "models/model.pt",
    }
    schema = tmp_path / "schema.json"
    shutil.copyfile(SCHEMA, schema)
    meta = bundle / "configs" / "metadata.json"
    checked = monai_bundle("verify_metadata", "--meta_file", str(meta), "--filepath", str(schema), cwd=bundle)
    assert checked.returncode == 0 and "metadata is verified with no error" in checked.stdout + checked.stderr
    net = monai_bundle(
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        str(meta),
        "--config_file",
        "configs/inference.json",
        cwd=bundle,
    )
    assert net.returncode == 0, net.stderr[-2000:]

    images = tmp_path / "images"
    images.mkdir()
    data = load_data(data_config_from_dict(study.user_attrs["data"]))
    for i in range(2):
        nib.save(nib.Nifti1Image(data.val_images[i, 0].numpy(), np.eye(4)), str(images / f"case{i}.nii.gz"))
    segmented = tmp_path / "segmented"
    run = monai_bundle(
        "run",
        "--config_file",
        "configs/inference.json",
        "--bundle_root",
        str(bundle),
        "--dataset_dir",
        str(images),
        "--output_dir",
        str(segmented),
        cwd=bundle,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    model = build_model(ArchSpec.from_dict(dict(trial.spec or {})))
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu"))
    model.eval()
    for i in range(2):
        saved = np.asarray(nib.load(str(segmented / f"case{i}_seg.nii.gz")).dataobj)
        with torch.no_grad():
            image = data.val_images[i : i + 1]
            expected = model((image - image.mean()) / image.std()).argmax(1)[0].numpy()
        assert saved.squeeze().shape == expected.shape
        assert (saved.squeeze() == expected).mean() > 0.99  # MONAI's std is unbiased, ours not: rare ties flip

    broken = json.loads(meta.read_text())
    del broken["authors"]
    meta.write_text(json.dumps(broken))
    refused = monai_bundle("verify_metadata", "--meta_file", str(meta), "--filepath", str(schema), cwd=bundle)
    assert refused.returncode != 0 and "'authors' is a required property" in refused.stderr


SMALL = ["--train-images", "16", "--val-images", "8", "--image-size", "32"]


def test_resources_the_cluster_lacks_are_refused_before_the_study_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    args = ["search", "--study", "gpu", "--storage", url, "--gpus-per-trial", "0.25", "--out-dir", str(tmp_path)]
    assert main([*args, *SMALL]) == 2
    assert "resources.gpus: 0.25 per trial, but the Ray cluster has 0 GPUs in all" in capsys.readouterr().err
    assert not (tmp_path / "nas.db").exists()  # not even an empty database


def _reported_epochs(ray_dir: Path) -> dict[int, int]:
    """Epochs each trial reported to Tune (its ``result.json``), by trial number: what it really did."""
    done: dict[int, int] = {}
    for result in ray_dir.rglob("result.json"):
        for line in result.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if "epoch" in row and not row.get("complete"):
                number = int(row["config"]["trial_number"])
                done[number] = max(done.get(number, 0), int(row["epoch"]))
    return done


def test_the_wall_time_budget_stops_the_search_and_prunes_what_still_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Timed by what the trials did, not by the machine's speed: a PRUNED trial keeps exactly the
    epochs it reported; when a busy machine reports none before the budget ends, a longer budget
    (a new study) is tried, so the curve is checked on every machine."""
    for attempt, wall in enumerate(("10s", "30s", "90s")):
        url = f"sqlite:///{tmp_path / f'nas{attempt}.db'}"
        args = ["search", "--study", "w", "--storage", url, "--trials", "40", "--epochs", "400", "--wall-time", wall]
        out_dir = tmp_path / f"runs{attempt}"
        assert main([*args, "--out-dir", str(out_dir), *SMALL]) == 0
        assert "stopped after" in capsys.readouterr().out
        records = trial_records(load_study(open_storage(url, create=False), "w"))
        # Enqueued reference points not reached stay WAITING: a resumed search runs them first.
        assert records and {r.state for r in records} <= {"PRUNED", "COMPLETE", "WAITING"}
        stopped = [r for r in records if r.state == "PRUNED"]
        assert stopped and all("wall-time" in (r.error or "") for r in stopped)
        reported = _reported_epochs(out_dir / "w" / "ray")
        assert {r.number: len(r.history) for r in stopped} == {r.number: reported.get(r.number, 0) for r in stopped}
        if any(r.history for r in stopped):
            return
    pytest.fail("no trial reported an epoch within 90 s of wall time")
