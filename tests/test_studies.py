"""Studies on real SQLite storage: creation, errors, records, Pareto set and export."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch

from search_spaces import ArchSpec, build_model
from studies import (
    ATTR_FLOPS,
    ExportError,
    StorageError,
    StudyError,
    StudyExistsError,
    StudyNotFoundError,
    StudyReader,
    best_under_budget,
    complete_records,
    create_study,
    export_trial,
    knee_record,
    load_study,
    open_storage,
    pareto_records,
    set_trial_user_attrs,
    state_counts,
    trial_records,
)
from tests._studyfactory import make_rich_study, make_study


@pytest.fixture
def storage(storage_url: str) -> optuna.storages.RDBStorage:
    return open_storage(storage_url, create=True)


def test_created_study_has_directions_metric_names_and_attrs(storage: optuna.storages.RDBStorage) -> None:
    create_study(storage, "s1", attrs={"data": {"kind": "synthetic", "size": 64}})
    study = load_study(storage, "s1")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["dice", "gflops"]
    assert study.user_attrs["data"] == {"kind": "synthetic", "size": 64}


def test_three_objectives_set_the_directions_records_and_the_front(storage: optuna.storages.RDBStorage) -> None:
    study = create_study(storage, "s3", objectives=("dice", "latency", "memory"))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    points = [(0.8, 5.0, 100.0), (0.7, 2.0, 100.0), (0.6, 6.0, 50.0), (0.5, 6.0, 120.0)]  # last: dominated
    for i, values in enumerate(points):
        trial = study.ask()
        trial.set_user_attr(ATTR_FLOPS, (i + 1) * 10**9)
        study.tell(trial, list(values))
    records = trial_records(study)
    assert records[0].objectives == ("dice", "latency", "memory")
    assert records[0].dice == 0.8 and records[0].objective("latency") == 5.0 and records[0].gflops == 1.0
    assert [r.number for r in pareto_records(records)] == [0, 1, 2]  # sorted by GFLOPs, from the flops attr
    fast = StudyReader(storage).records("s3")
    assert [(r.objectives, r.values) for r in fast] == [(r.objectives, r.values) for r in records]
    for bad, message in (
        (("dice",), "expected 2 or 3 distinct"),
        (("dice", "dice"), "expected 2 or 3 distinct"),
        (("dice", "speed"), "'speed' is not an objective; expected 2 or 3 of dice, gflops, params, latency, memory"),
    ):
        with pytest.raises(StudyError, match=message):
            create_study(storage, "bad", objectives=bad)


def test_existing_and_missing_studies_are_reported(storage: optuna.storages.RDBStorage) -> None:
    create_study(storage, "search-a")
    with pytest.raises(StudyExistsError, match="search-a"):
        create_study(storage, "search-a")
    with pytest.raises(StudyNotFoundError, match=r"did you mean 'search-a'.*search-a"):
        load_study(storage, "search-b")


def test_records_pareto_set_and_counts(storage: optuna.storages.RDBStorage) -> None:
    study = make_study(storage, "front")
    records = trial_records(study)
    assert state_counts(records) == {"COMPLETE": 4, "FAIL": 1, "PRUNED": 1}
    assert len(complete_records(records)) == 4
    front = pareto_records(records)
    assert [r.number for r in front] == [0, 1]  # sorted by GFLOPs
    assert front[1].spec is not None and ArchSpec.from_dict(front[1].spec).attention.block == "sa"
    assert front[0].dice == 0.50 and front[0].gflops == 0.05


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a valid SQLAlchemy URL"),
        ("oracle://u@h/db", "backend 'oracle'"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
    ],
)
def test_bad_storage_urls_are_refused_before_touching_anything(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        open_storage(url, create=True)


def test_missing_sqlite_file_is_not_created_for_reading(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(StorageError, match="no study database"):
        open_storage(f"sqlite:///{path}", create=False)
    assert not path.exists()
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'no' / 'dir.db'}", create=True)


def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    with pytest.raises(StorageError) as info:
        open_storage("postgresql://nas:secret@127.0.0.1:1/nas", create=True)
    assert "cannot open" in str(info.value)
    assert "secret" not in str(info.value)


def test_export_writes_spec_weights_card_and_metrics(storage: optuna.storages.RDBStorage, tmp_path: Path) -> None:
    study = make_study(storage, "exp", weights_dir=tmp_path)
    out = export_trial(study, 1, tmp_path / "export")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "MODEL_CARD.md",
        "arch.json",
        "bundle",
        "manifest.json",
        "metrics.json",
        "model.onnx",
        "model.pt",
        "model.pt2",
        "model.ts",
    ]
    spec = ArchSpec.from_json((out / "arch.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert spec.spec_hash() == metrics["spec_hash"] and metrics["torchscript"] == "model.ts"
    card = (out / "MODEL_CARD.md").read_text()
    assert "trial 1" in card and "0.600000" in card and spec.spec_hash() in card and "torch.jit.load" in card
    model = build_model(spec)
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu"))
    traced = torch.jit.load(str(out / "model.ts"))
    x = torch.randn(2, 1, 64, 64)  # another batch size than the trace's: the module is not fixed to batch 1
    with torch.no_grad():
        assert torch.allclose(traced(x), model.eval()(x), atol=1e-5)


def test_knee_and_budget_selection(storage: optuna.storages.RDBStorage) -> None:
    records = trial_records(make_rich_study(storage, "sel", 200, seed=1))
    front = pareto_records(records)
    assert len(front) >= 3
    knee = knee_record(records)
    assert knee in front and knee not in (front[0], front[-1])  # an interior point of a front of 3+
    cap = front[len(front) // 2].gflops
    assert cap is not None
    best = best_under_budget(records, cap)
    assert best.gflops is not None and best.gflops <= cap
    assert best.dice == max(r.dice for r in complete_records(records) if r.gflops is not None and r.gflops <= cap)
    with pytest.raises(ExportError, match=r"--max-gflops 1e-09: no COMPLETE trial .* the cheapest needs"):
        best_under_budget(records, 1e-9)
    with pytest.raises(ExportError, match="--knee: the study has no COMPLETE trials"):
        knee_record([r for r in records if r.state != "COMPLETE"])


def test_the_knee_is_where_the_gain_per_log_cost_drops() -> None:
    from studies import TrialRecord

    points = [(0.50, 0.01), (0.78, 0.02), (0.80, 0.1), (0.81, 1.0)]  # big gain, then little for 50x the cost
    records = [TrialRecord(number=i, state="COMPLETE", values=v) for i, v in enumerate(points)]
    assert knee_record(records).number == 1
    assert knee_record(records[:2]).number == 1  # two points: the higher Dice


def test_nas_export_selects_by_knee_and_budget(
    storage: optuna.storages.RDBStorage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    make_study(open_storage(url, create=True), "pick", weights_dir=tmp_path)
    assert main(["export", "pick", "--max-gflops", "0.06", "--storage", url, "-o", str(tmp_path / "a")]) == 0
    assert "best Dice within 0.06 GFLOPs: trial 0" in capsys.readouterr().out
    assert main(["export", "pick", "--knee", "--storage", url, "-o", str(tmp_path / "b")]) == 0
    assert "the knee of the front: trial 1" in capsys.readouterr().out  # two points on the front: higher Dice
    assert main(["export", "pick", "--knee", "--trial", "1", "--storage", url]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_export_refusals_name_the_problem_and_write_nothing(
    storage: optuna.storages.RDBStorage, tmp_path: Path
) -> None:
    study = make_study(storage, "exp2", weights_dir=tmp_path)
    with pytest.raises(ExportError, match="PRUNED"):
        export_trial(study, 4, tmp_path / "a")
    with pytest.raises(ExportError, match="no such trial"):
        export_trial(study, 99, tmp_path / "b")
    occupied = tmp_path / "c"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_trial(study, 0, occupied)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert sorted(p.name for p in occupied.iterdir()) == ["keep.txt"]


def test_a_keep_policy_deletes_dominated_weights_and_exports_say_why(
    storage: optuna.storages.RDBStorage, tmp_path: Path
) -> None:
    from studies import prune_weights, pruned_weights

    study = make_study(storage, "keep", weights_dir=tmp_path)  # trials 0, 1 on the front; 2, 3 dominated
    records = {r.number: r for r in trial_records(study)}
    assert prune_weights(study, keep_top=3) == [3]  # top-3 by Dice: 1, 2, 0; trial 3 is dominated and worst
    assert pruned_weights(study) == {3}
    assert not Path(records[3].weights_path or "").exists() and Path(records[2].weights_path or "").exists()
    assert prune_weights(study, keep_top=0) == [2] and pruned_weights(study) == {2, 3}
    assert all(Path(records[n].weights_path or "").exists() for n in (0, 1))
    with pytest.raises(ExportError, match="deleted by the search's keep policy"):
        export_trial(study, 2, tmp_path / "out")
    export_trial(study, 1, tmp_path / "out")  # the front stays exportable


def test_sqlite_studies_use_write_ahead_logging_so_readers_do_not_block_trials(tmp_path: Path) -> None:
    import sqlite3

    from tests._studyfactory import synthetic_trials

    path = tmp_path / "wal.db"
    storage = open_storage(f"sqlite:///{path}", create=True)
    study = create_study(storage, "w")
    with storage.engine.connect() as connection:  # commits sync at checkpoints, not each time (WAL)
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reader.execute("BEGIN")
        before = reader.execute("SELECT count(*) FROM trials").fetchone()[0]  # a read transaction stays open
        study.add_trials(synthetic_trials(3, seed=0))  # with a rollback journal this would wait for the reader
        assert reader.execute("SELECT count(*) FROM trials").fetchone()[0] == before  # the reader's snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM trials").fetchone()[0] == before + 3
    finally:
        reader.close()


def test_several_user_attributes_are_written_in_one_go(storage: optuna.storages.RDBStorage) -> None:
    for study in (create_study(storage, "batched"), optuna.create_study(directions=["maximize", "minimize"])):
        trial = study.ask()
        set_trial_user_attrs(trial, {"spec": {"backbone": "unet"}, "label": "none", "epochs": 3})
        set_trial_user_attrs(trial, {"epochs": 4})  # an upsert, as set_user_attr is
        assert trial.user_attrs["epochs"] == 4 and trial.user_attrs["label"] == "none"  # the Trial sees them too
        assert study.trials[0].user_attrs == {"spec": {"backbone": "unet"}, "label": "none", "epochs": 4}


def test_opening_a_running_searchs_database_again_keeps_its_writes_visible(tmp_path: Path) -> None:
    """``nas search`` opens its SQLite study a second time (read-only) while it writes. A plain
    ``open()`` of the file in that process would drop its POSIX locks: the next reader process to
    close its connection would then delete the write-ahead log under the search, and every later
    commit of the search would be invisible to ``nas status`` and the dashboard."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    writer = open_storage(url, create=True)
    study = optuna.create_study(study_name="s", storage=writer, directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0]))
    open_storage(url, create=False)  # what the search CLI does once the study exists
    count = (
        "import optuna, sys; from studies import open_storage; "
        "s = optuna.load_study(study_name='s', storage=open_storage(sys.argv[1], create=False)); "
        "print(len(s.trials))"
    )

    def trials_seen_by_another_process() -> int:
        repo = Path(__file__).parents[1]
        done = subprocess.run([sys.executable, "-c", count, url], capture_output=True, text=True, check=True, cwd=repo)
        return int(done.stdout.strip().splitlines()[-1])

    assert trials_seen_by_another_process() == 1  # a reader opens and closes the database
    study.add_trial(optuna.trial.create_trial(values=[0.6, 2.0]))  # the search goes on writing
    assert (tmp_path / "nas.db-wal").exists()
    assert trials_seen_by_another_process() == 2
