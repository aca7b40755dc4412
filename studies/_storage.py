"""Opening an Optuna RDB storage from a SQLAlchemy URL, with readable errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.event
import sqlalchemy.exc
from sqlalchemy.engine import URL, make_url

from studies._errors import StorageError

logger = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///nas.db"
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql")
_EXAMPLES = "e.g. sqlite:///nas.db or postgresql://user:password@host:5432/dbname"


def parse_storage_url(url: str) -> URL:
    """Parse and check a storage URL without touching any database."""
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError, TypeError):
        raise StorageError(f"storage: {url!r} is not a valid SQLAlchemy URL; expected {_EXAMPLES}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StorageError(
            f"storage: backend {backend!r} in {redact(parsed)!r} is not supported; "
            f"expected one of {', '.join(SUPPORTED_BACKENDS)} ({_EXAMPLES})"
        )
    if backend == "sqlite" and (not parsed.database or parsed.database == ":memory:"):
        raise StorageError(
            f"storage: {url!r} names no database file; an in-memory database would lose the study. "
            "Use e.g. sqlite:///nas.db"
        )
    return parsed


def redact(url: URL) -> str:
    """The URL as text with any password hidden, fit for messages and logs."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (``None`` for other backends)."""
    parsed = parse_storage_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def open_storage(url: str, *, create: bool) -> optuna.storages.RDBStorage:
    """Open the storage at ``url``.

    With ``create=False`` (the read-only commands) nothing is written: a SQLite file that does not
    exist is an error rather than being created, and a database that is not an Optuna storage (no
    Optuna tables, or another program's ``studies`` table) is refused before Optuna could add its
    tables to it; the journal mode is left as it is.
    """
    parsed = parse_storage_url(url)
    shown = redact(parsed)
    engine_kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        if path.is_dir():
            raise StorageError(f"storage {shown}: {path.resolve()} is a directory; expected a study database file")
        if not create and not path.is_file():
            raise StorageError(f"storage {shown}: no study database at {path.resolve()} (is the path right?)")
        if create and not path.parent.resolve().is_dir():
            raise StorageError(f"storage {shown}: directory {path.parent.resolve()} does not exist")
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        if not create:  # reading never writes: refuse what Optuna would otherwise create its tables in
            if path is not None:
                _check_sqlite_study_file(path, shown)
            else:
                _check_study_tables(url, engine_kwargs, shown)
        elif path is not None and path.is_file() and path.stat().st_size > 0:
            # a writer may start a fresh database, never add its tables to another program's
            _check_sqlite_study_file(path, shown, fresh_ok=True)
        storage = _rdb_storage(url, engine_kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ModuleNotFoundError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if parsed.get_backend_name() == "postgresql" and "import" in reason.lower():
            reason += "; install the driver with: pip install 'attention-nas[postgres]' (psycopg 3)"
        raise StorageError(f"storage {shown}: cannot open it ({reason})") from None
    except RuntimeError as exc:  # optuna: schema from another version
        raise StorageError(f"storage {shown}: {exc}") from None
    if path is not None and create:  # the mode is stored in the file: only a writer switches it
        _use_wal(storage, shown)
    return storage


#: Tables every Optuna RDB storage has, and the columns of its ``studies`` table that tell it from
#: another program's table of that name.
_OPTUNA_TABLES = frozenset({"studies", "trials", "version_info", "alembic_version"})
_OPTUNA_STUDY_COLUMNS = frozenset({"study_id", "study_name"})


def _not_a_study_storage(shown: str, tables: set[str], columns: set[str], fresh_ok: bool = False) -> str | None:
    """Why a database with these ``tables`` (and ``studies`` columns) is not an Optuna storage
    (``fresh_ok``: a database without any table is fine, a writer creates the storage in it)."""
    if not tables and fresh_ok:
        return None
    if not tables:
        return f"storage {shown}: the database has no tables, so it is not a study storage (nas search creates one)"
    missing = sorted(_OPTUNA_TABLES - tables)
    if missing or not columns >= _OPTUNA_STUDY_COLUMNS:
        if "studies" in tables and not columns >= _OPTUNA_STUDY_COLUMNS:
            what = "a studies table that is not Optuna's"
        elif missing == sorted(_OPTUNA_TABLES):
            what = "none of Optuna's tables"
        else:
            what = f"no {', '.join(missing)} table{'s' if len(missing) > 1 else ''}"
        return (
            f"storage {shown}: the database has {what}, so it is not an Optuna study storage; "
            "expected one written by nas search (nothing was changed)"
        )
    return None


def _check_sqlite_study_file(path: Path, shown: str, *, fresh_ok: bool = False) -> None:
    """Refuse, without writing to it, a SQLite file that is not an Optuna storage (opened read-only).

    The file is read only through SQLite, never with a plain ``open()``: closing any descriptor of
    a file drops every POSIX lock the process holds on it, so a process already writing to the
    database (``nas search``, which opens it again to read the study back) would lose the shared
    lock that tells other processes it is there. The next reader to close its connection would then
    think itself the last one and delete the write-ahead log under the running search, whose later
    commits no other process could see.
    """
    import sqlite3

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StorageError(f"storage {shown}: cannot read {path.resolve()} ({exc.strerror or exc})") from None
    if size == 0:
        if fresh_ok:
            return
        raise StorageError(
            f"storage {shown}: {path.resolve()} is empty; expected a study database written by nas search"
        )
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error as exc:
        raise StorageError(f"storage {shown}: cannot open {path.resolve()} ({exc})") from None
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in connection.execute("PRAGMA table_info(studies)")} if "studies" in tables else set()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise StorageError(
                f"storage {shown}: {path.resolve()} is not a SQLite database; expected a study database written by "
                "nas search"
            ) from None
        raise StorageError(f"storage {shown}: cannot read {path.resolve()} ({exc})") from None
    finally:
        connection.close()
    reason = _not_a_study_storage(shown, tables, columns, fresh_ok)
    if reason is not None:
        raise StorageError(reason)


def _check_study_tables(url: str, engine_kwargs: dict[str, Any], shown: str) -> None:
    """Refuse, reading only its catalogue, a server database that is not an Optuna storage."""
    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        inspector = sqlalchemy.inspect(engine)
        tables = set(inspector.get_table_names())
        columns = {c["name"] for c in inspector.get_columns("studies")} if "studies" in tables else set()
    finally:
        engine.dispose()
    reason = _not_a_study_storage(shown, tables, columns)
    if reason is not None:
        raise StorageError(reason)


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage. Two drivers opening a fresh database at once both create its tables;
    on PostgreSQL the slower one fails on a duplicate catalogue entry. The tables then exist, so
    opening again succeeds."""
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=False)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            racing = "already exists" in str(exc) or "duplicate key" in str(exc)
            if not racing or attempt == attempts - 1:
                raise
            logger.info("storage: another process is creating the tables; opening again")
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _use_wal(storage: optuna.storages.RDBStorage, shown: str) -> None:
    """Switch a SQLite study database to write-ahead logging (it stays so: the mode is stored in the
    file): readers such as the dashboard then never block the trials' writes, nor they the readers.
    A file system without shared memory (NFS) refuses it; the database then keeps its rollback
    journal, which is slower but correct (put a team's studies in PostgreSQL)."""
    try:
        with storage.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode=WAL").scalar()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        logger.warning("storage %s: cannot switch to WAL (%s); keeping the rollback journal", shown, exc)
        return
    if str(mode).lower() != "wal":
        logger.warning("storage %s: SQLite kept journal mode %s instead of WAL", shown, mode)
        return
    # In WAL mode, synchronous=NORMAL syncs at checkpoints rather than at every commit: a commit
    # costs ~1 ms instead of ~4 here, and a killed process loses nothing (a power cut may lose the
    # last commits, never consistency). The setting is per connection: apply it to every new one.
    sqlalchemy.event.listen(storage.engine, "connect", _synchronous_normal)
    storage.engine.dispose()  # connections opened so far were made without it


def _synchronous_normal(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def set_trial_user_attrs(trial: Any, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of a running Optuna ``trial`` in one database transaction.

    ``Trial.set_user_attr`` commits once per attribute; a trial record has about twenty, and on
    SQLite each commit is a file sync. For an RDB storage this writes them all in one session (by
    the storage's own per-attribute upsert), otherwise it falls back to one call each.
    """
    if not attrs:
        return
    storage, trial_id = trial.storage, trial._trial_id
    backend = getattr(storage, "_backend", storage)
    write = getattr(backend, "_set_trial_attr_without_commit", None)
    if isinstance(backend, optuna.storages.RDBStorage) and write is not None:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(backend.scoped_session, True) as session:
            for key, value in attrs.items():
                write(session, models.TrialUserAttributeModel, trial_id, key, value)
    else:
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
    cached = getattr(trial, "_cached_frozen_trial", None)  # what Trial.user_attrs answers from
    if cached is not None:
        cached.user_attrs.update(attrs)
