"""Bad input to the storage, export, train and retrain commands (issue 16): one line on stderr naming
the file, field or value and what would be accepted, exit 2, no traceback, and nothing written:
no file created or changed in the working directory, another program's database included."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import optuna
import pytest

from nas.cli import main
from search_spaces import ArchSpec
from studies import export_trial, open_storage
from tests._studyfactory import add_trial, make_study
from tests.conftest import nas_process

#: The trial of the study whose recorded spec is damaged (it cannot be rebuilt, so not exported).
BAD_SPEC_TRIAL = 6
TIME_BOUND_S = 60


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (directories too, so an empty leftover folder counts) with its bytes' hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def unwritable_dir(root: Path) -> Path:
    """A directory this process cannot create anything in (root ignores file modes: /sys refuses it)."""
    if os.geteuid() == 0:
        return Path("/sys/nas-test-unwritable")
    locked = root / "locked"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o555)
    return locked / "out"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory holding a study with weights (one trial's spec damaged), a previous good
    export, another program's SQLite databases and other files a user could name by mistake."""
    root = tmp_path_factory.mktemp("bad-input")
    (root / "w").mkdir()
    url = f"sqlite:///{root / 'nas.db'}"
    storage = open_storage(url, create=True)
    study = make_study(storage, "s", weights_dir=root / "w")
    number = add_trial(study, ArchSpec(channels=(8, 16, 32)), (0.3, 0.01), weights_dir=root / "w")
    assert number == BAD_SPEC_TRIAL
    with sqlite3.connect(root / "nas.db") as db:  # a spec no network can be built from
        (trial_id,) = db.execute("SELECT trial_id FROM trials WHERE number = ?", (number,)).fetchone()
        spec = json.loads(
            db.execute(
                "SELECT value_json FROM trial_user_attributes WHERE trial_id = ? AND key = 'spec'", (trial_id,)
            ).fetchone()[0]
        )
        db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'spec'",
            (json.dumps({**spec, "channels": [8]}), trial_id),
        )
    db.close()
    export_trial(study, 0, root / "good")
    storage.engine.dispose()
    with sqlite3.connect(root / "nas.db") as db:  # as Optuna itself leaves a database: a reader adds no -wal/-shm
        assert db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    db.close()
    with sqlite3.connect(root / "other.db") as db:  # another program's database
        db.execute("CREATE TABLE people (id INTEGER, name TEXT)")
        db.execute("INSERT INTO people VALUES (1, 'ada')")
    db.close()
    with sqlite3.connect(root / "foreign.db") as db:  # ... with a table named like Optuna's
        db.execute("CREATE TABLE studies (id INTEGER, title TEXT)")
    db.close()
    (root / "text.db").write_text("not a database\n")
    (root / "afile").write_text("a file where a directory is expected\n")
    (root / "adir").mkdir()
    (root / "adir" / "keep.txt").write_text("x\n")
    arch = json.loads((root / "good" / "arch.json").read_text())
    (root / "arch.json").write_text(json.dumps(arch))
    (root / "string-version.json").write_text(json.dumps({**arch, "schema_version": "1"}))
    listed = root / "listed-export"
    listed.mkdir()
    (listed / "arch.json").write_text(json.dumps(arch))
    (listed / "metrics.json").write_text("[1, 2, 3]\n")
    unwritable_dir(root)
    return root


NOT_OPTUNA = "so it is not an Optuna study storage"
CASES: list[tuple[str, list[str], str]] = [
    ("status-foreign-db", ["status", "x", "--storage", "sqlite:///other.db"], "none of Optuna's tables, " + NOT_OPTUNA),
    ("dashboard-foreign-db", ["dashboard", "--storage", "sqlite:///other.db"], "none of Optuna's tables"),
    (
        "status-foreign-studies-table",
        ["status", "x", "--storage", "sqlite:///foreign.db"],
        "a studies table that is not Optuna's, " + NOT_OPTUNA,
    ),
    ("report-foreign-studies-table", ["report", "x", "-o", "r.html", "--storage", "sqlite:///foreign.db"], NOT_OPTUNA),
    ("status-missing-db", ["status", "x", "--storage", "sqlite:///missing.db"], "no study database at"),
    ("status-text-file", ["status", "x", "--storage", "sqlite:///text.db"], "text.db is not a SQLite database"),
    ("status-directory", ["status", "x", "--storage", "sqlite:///adir"], "adir is a directory; expected a study"),
    ("export-onto-a-file", ["export", "s", "--trial", "0", "-o", "afile"], "-o afile: is a file; expected a directory"),
    (
        "export-under-a-file",
        ["export", "s", "--trial", "0", "-o", "afile/sub"],
        "-o afile/sub: cannot be created: afile is a file",
    ),
    (
        "export-bad-spec",
        ["export", "s", "--trial", str(BAD_SPEC_TRIAL), "-o", "out"],
        "recorded architecture is not valid",
    ),
    (
        "export-bad-spec-over-a-good-export",
        ["export", "s", "--trial", str(BAD_SPEC_TRIAL), "-o", "good", "--overwrite"],
        "recorded architecture is not valid (channels:",
    ),
    ("export-unwritable", ["export", "s", "--trial", "0", "-o", "UNWRITABLE"], "cannot be written"),
    ("retrain-metrics-list", ["retrain", "listed-export", "--epochs", "1"], "metrics.json: holds a JSON list"),
    ("train-a-directory", ["train", "adir"], "spec: adir is a directory; expected an ArchSpec JSON file"),
    (
        "train-string-version",
        ["train", "string-version.json"],
        "schema_version: '1' is not valid; expected the integer 1",
    ),
    ("train-unwritable", ["train", "arch.json", "-o", "UNWRITABLE", "--epochs", "1"], "cannot be written"),
    ("train-under-a-file", ["train", "arch.json", "-o", "afile/x", "--epochs", "1"], "afile is a file"),
    *(
        (f"search-{name}", ["search", "--storage", "sqlite:///new.db", "--study", "n", *flags], expected)
        for name, flags, expected in (
            ("image-size", ["--image-size", "17"], "data.size: 17 is not valid; expected a multiple of 16"),
            ("missing-data-file", ["--data", "missing.json"], "--data: 'missing.json' is neither"),
            ("too-many-cpus", ["--cpus-per-trial", "64"], "resources.cpus: 64 per trial"),
            ("no-gpu", ["--gpus-per-trial", "1"], "resources.gpus: 1 per trial"),
            ("missing-space", ["--space", "nonexist.json"], "--space: 'nonexist.json' is neither"),
            ("zero-trials", ["--set", "budget.trials=0"], "budget.trials"),
            ("unknown-kind", ["--set", "data.kind=folder3d"], "data.kind: 'folder3d' is not valid"),
            ("foreign-storage", ["--storage", "sqlite:///other.db"], "other.db"),
        )
    ),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(workdir: Path, args: list[str], expected: str) -> None:
    target = str(unwritable_dir(workdir))
    args = [target if a == "UNWRITABLE" else a for a in args]
    before = snapshot(workdir)
    started = time.monotonic()
    proc = nas_process(*args, cwd=workdir, timeout=TIME_BOUND_S * 3)
    elapsed = time.monotonic() - started
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in proc.stderr, err[-2000:]
    assert len(err.splitlines()) == 1, err
    assert expected in err, err
    assert "epoch" not in proc.stdout, "it trained before refusing"  # -o is checked before any training
    assert snapshot(workdir) == before  # no file created or changed: no -wal/-shm, no tables, no leftovers
    assert elapsed < TIME_BOUND_S, f"took {elapsed:.0f} s"


def test_a_foreign_database_keeps_its_bytes_tables_and_journal_mode(workdir: Path) -> None:
    before = (workdir / "other.db").read_bytes()
    listing = sorted(p.name for p in workdir.iterdir())
    proc = nas_process("status", "x", "--storage", "sqlite:///other.db", cwd=workdir, timeout=TIME_BOUND_S * 3)
    assert proc.returncode == 2 and "other.db" in proc.stderr and "not an Optuna study storage" in proc.stderr
    assert (workdir / "other.db").read_bytes() == before
    assert sorted(p.name for p in workdir.iterdir()) == listing  # no other.db-wal / other.db-shm
    with sqlite3.connect(f"{(workdir / 'other.db').as_uri()}?mode=ro", uri=True) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["people"]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()


def test_reading_a_real_optuna_database_leaves_its_journal_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A storage Optuna itself made (rollback journal) is read as it is, not switched to WAL."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    optuna.create_study(study_name="p", storage=url, directions=["maximize", "minimize"])
    before = snapshot(tmp_path)
    assert main(["status", "p", "--storage", url]) == 0
    assert "study p" in capsys.readouterr().out
    assert snapshot(tmp_path) == before
    with sqlite3.connect(tmp_path / "plain.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()


def test_an_export_is_moved_into_place_whole(workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exports into a new nested folder and into an existing empty one succeed, leave no staging
    folder behind, and --overwrite replaces the export's files (keeping the user's others)."""
    shutil.copyfile(workdir / "nas.db", tmp_path / "nas.db")  # the weights stay where the study recorded them
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    nested, empty = tmp_path / "a" / "b" / "export", tmp_path / "empty"
    empty.mkdir()
    for out in (nested, empty):
        assert main(["export", "s", "--trial", "1", "-o", str(out), "--storage", url]) == 0
        assert {p.name for p in out.iterdir()} >= {"arch.json", "model.pt", "metrics.json", "MODEL_CARD.md", "bundle"}
    (empty / "notes.txt").write_text("mine\n")
    assert main(["export", "s", "--trial", "0", "-o", str(empty), "--storage", url, "--overwrite"]) == 0
    assert json.loads((empty / "metrics.json").read_text())["trial"] == 0
    assert (empty / "notes.txt").read_text() == "mine\n"
    assert not [p for p in tmp_path.rglob(".nas-*")], "a staging folder was left behind"
    capsys.readouterr()
