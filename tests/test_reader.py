"""The fast, incremental study reader gives exactly the records Optuna's API gives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from studies import (
    JSONHistory,
    StorageError,
    StudyNotFoundError,
    StudyReader,
    create_study,
    open_storage,
    trial_records,
)
from tests._studyfactory import add_trial, make_rich_study, make_study, sa_spec, synthetic_trials


@pytest.fixture
def url(storage_url: str) -> str:
    return storage_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reader.db'}"


def test_fast_reader_equals_the_optuna_api_on_every_state(url: str) -> None:
    storage = open_storage(url, create=True)
    rich = make_rich_study(storage, "rich", 150, seed=1)
    running = rich.ask()  # a RUNNING trial with an attribute and no values
    running.set_user_attr("label", "in flight")
    small = make_study(storage, "small")
    reader = StudyReader(open_storage(url, create=False))
    assert reader.fast
    assert reader.records("rich") == trial_records(rich)
    assert reader.records("small") == trial_records(small)
    assert {r.state for r in reader.records("rich")} == {"COMPLETE", "PRUNED", "FAIL", "INFEASIBLE", "RUNNING"}
    assert reader.study_names() == ["rich", "small"]


def test_learning_curves_are_decoded_when_used_and_equal_the_stored_ones(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url, create=True)
    study = make_rich_study(storage, "curves", 40, seed=6)
    stored = {t.number: t.user_attrs.get("history", []) for t in study.get_trials()}
    records = StudyReader(open_storage(sqlite_url, create=False)).records("curves")
    curves = [r for r in records if r.history]
    assert curves and all(isinstance(r.history, JSONHistory) for r in curves)
    for r in records:
        assert list(r.history) == stored[r.number] and len(r.history) == len(stored[r.number])
        assert r.history == tuple(stored[r.number]) and tuple(stored[r.number]) == r.history
        assert r.history[:1] == tuple(stored[r.number][:1])


def test_a_refresh_reads_new_and_finished_trials(url: str) -> None:
    storage = open_storage(url, create=True)
    study = create_study(storage, "live")
    reader = StudyReader(open_storage(url, create=False))
    assert reader.records("live") == []
    study.add_trials(synthetic_trials(5, seed=2))
    running = study.ask()
    assert [r.state for r in reader.records("live")][-1] == "RUNNING"
    running.set_user_attr("spec_hash", "abc")
    study.tell(running, [0.7, 0.1])
    after = reader.records("live")
    assert after == trial_records(study)
    assert after[-1].state == "COMPLETE" and after[-1].values == (0.7, 0.1) and after[-1].spec_hash == "abc"


def test_a_refresh_reads_again_only_trials_still_running(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finished trials are read once, whatever the record makes of them (INFEASIBLE, REUSED): a
    refresh of a 50,000-trial study re-read its 1,500 infeasible trials every time."""
    storage = open_storage(url, create=True)
    study = make_rich_study(storage, "once", 120, seed=3)
    running = study.ask()
    reader = StudyReader(open_storage(url, create=False))
    first = reader.records("once")
    assert {"INFEASIBLE", "RUNNING"} <= {r.state for r in first}
    asked: list[list[int]] = []
    details = StudyReader._details

    def counting(conn: object, study_id: int, trial_ids: list[int], *, everything: bool) -> object:
        asked.append(list(trial_ids))
        return details(conn, study_id, trial_ids, everything=everything)  # type: ignore[arg-type]

    monkeypatch.setattr(StudyReader, "_details", staticmethod(counting))
    assert reader.records("once") == first
    assert asked == [[running._trial_id]]


def test_a_study_deleted_and_created_again_is_read_afresh(url: str) -> None:
    storage = open_storage(url, create=True)
    make_study(storage, "again")
    reader = StudyReader(open_storage(url, create=False))
    assert len(reader.records("again")) == 6
    optuna.delete_study(study_name="again", storage=storage)
    study = create_study(storage, "again")
    study.add_trials(synthetic_trials(2, seed=3))
    assert reader.records("again") == trial_records(study)


def test_a_study_deleted_and_created_again_with_as_many_trials_is_read_afresh(url: str) -> None:
    """SQLite gives the new trials the ids of the deleted ones: a refresh that only asked for
    trials newer than the last read, or unfinished, would keep showing the deleted study."""
    storage = open_storage(url, create=True)
    make_study(storage, "again")
    reader = StudyReader(open_storage(url, create=False))
    before = reader.records("again")
    optuna.delete_study(study_name="again", storage=storage)
    study = create_study(storage, "again")
    for number in range(len(before)):
        add_trial(study, sa_spec((number % 2,)), (0.3 + 0.01 * number, 0.2))
    after = reader.records("again")
    assert after == trial_records(study)
    assert [r.values for r in after] != [r.values for r in before]


def test_a_refresh_with_nothing_new_reads_no_trial_again(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle refresh of a big study asks the database for what changed, not for every trial's row."""
    storage = open_storage(url, create=True)
    study = make_rich_study(storage, "idle", 120, seed=4)
    running = study.ask()
    reader = StudyReader(open_storage(url, create=False))
    first = reader.records("idle")
    heads: list[int] = []
    read = StudyReader._heads

    def counting(conn: object, study_id: int, cache: object) -> object:
        rows, count = read(conn, study_id, cache)  # type: ignore[arg-type]
        heads.append(len(rows))
        return rows, count

    monkeypatch.setattr(StudyReader, "_heads", staticmethod(counting))
    assert reader.records("idle") == first
    assert heads == [1]  # the running trial
    study.tell(running, [0.9, 0.01])
    study.add_trials(synthetic_trials(2, seed=5))
    assert reader.records("idle") == trial_records(study)
    assert heads == [1, 3]


def test_unknown_study_lists_the_existing_ones(url: str) -> None:
    storage = open_storage(url, create=True)
    make_study(storage, "search-a")
    reader = StudyReader(storage)
    with pytest.raises(StudyNotFoundError, match=r"did you mean 'search-a'"):
        reader.records("search-b")


def test_other_storages_and_unknown_schemas_fall_back_to_optuna(sqlite_url: str, tmp_path: Path) -> None:
    url = sqlite_url
    memory = optuna.storages.InMemoryStorage()
    study = make_study(memory, "mem")
    reader = StudyReader(memory)
    assert not reader.fast and reader.records("mem") == trial_records(study)

    storage = open_storage(url, create=True)
    on_disk = make_study(storage, "disk")
    with sqlite3.connect(tmp_path / "reader.db") as conn:  # as if a future Optuna had migrated the schema
        conn.execute("UPDATE alembic_version SET version_num = 'v9.9.9.z'")
    future = StudyReader(optuna.storages.RDBStorage(url, skip_compatibility_check=True))
    assert not future.fast and future.records("disk") == trial_records(on_disk)


def test_a_database_that_goes_away_is_a_storage_error(sqlite_url: str, tmp_path: Path) -> None:
    url = sqlite_url
    storage = open_storage(url, create=True)
    make_study(storage, "gone")
    reader = StudyReader(open_storage(url, create=False))
    with sqlite3.connect(tmp_path / "reader.db") as conn:
        conn.execute("ALTER TABLE trial_user_attributes RENAME TO moved_away")
    with pytest.raises(StorageError, match="cannot read study 'gone'"):
        reader.records("gone")
