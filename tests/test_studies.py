"""Studies on real SQLite storage: creation, errors, records, Pareto set and export."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from search_spaces import ArchSpec
from studies import (
    ExportError,
    StorageError,
    StudyExistsError,
    StudyNotFoundError,
    complete_records,
    create_study,
    export_trial,
    load_study,
    open_storage,
    pareto_records,
    state_counts,
    trial_records,
)
from tests._studyfactory import make_study


@pytest.fixture
def storage(tmp_path: Path) -> optuna.storages.RDBStorage:
    return open_storage(f"sqlite:///{tmp_path / 'studies.db'}", create=True)


def test_created_study_has_directions_metric_names_and_attrs(storage: optuna.storages.RDBStorage) -> None:
    create_study(storage, "s1", attrs={"data": {"kind": "synthetic", "size": 64}})
    study = load_study(storage, "s1")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["dice", "gflops"]
    assert study.user_attrs["data"] == {"kind": "synthetic", "size": 64}


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
    assert names == ["MODEL_CARD.md", "arch.json", "metrics.json", "model.pt"]
    spec = ArchSpec.from_json((out / "arch.json").read_text())
    assert spec.spec_hash() == json.loads((out / "metrics.json").read_text())["spec_hash"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "trial 1" in card and "0.600000" in card and spec.spec_hash() in card


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
