"""Reading whole studies fast, and again and again, for views that refresh while a search runs.

Optuna's ``study.get_trials()`` builds a full ``FrozenTrial`` (parameters, distributions, system
attributes, intermediate values) through the ORM: about 3 s for 5,000 trials on a 2-core machine,
every time. A dashboard needs less, more often. On an RDB storage whose schema revision this module
knows, ``StudyReader`` reads the three tables a record needs with plain SQL (trials, their values and
user attributes) and afterwards re-reads only trials that are new or were still running: Optuna never
changes a finished trial. On any other storage it falls back to Optuna's API, so the records are the
same either way (a test compares the two).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import String, cast, column, func, or_, select, table, text

from studies._errors import StorageError
from studies._records import ATTR_HISTORY, JSONHistory, TrialRecord, record_from_parts, trial_records
from studies._study import OBJECTIVES, hv_reference, load_study, study_names

logger = logging.getLogger(__name__)

#: Optuna RDB schema revisions (``alembic_version``) whose tables this reader understands.
KNOWN_SCHEMA_REVISIONS = frozenset({"v3.2.0.a"})
_FINISHED = frozenset({"COMPLETE", "PRUNED", "FAIL"})
_CHUNK = 500  # ids per IN (...) list: far below SQLite's and PostgreSQL's parameter limits

# The columns of Optuna's tables that a record needs (lightweight constructs: the dialect quotes names).
_STUDIES = table("studies", column("study_id"), column("study_name"))
_STUDY_SYSTEM = table("study_system_attributes", column("study_id"), column("key"), column("value_json"))
_TRIALS = table(
    "trials",
    column("trial_id"),
    column("number"),
    column("study_id"),
    column("state"),
    column("datetime_start"),
    column("datetime_complete"),
)
_VALUES = table("trial_values", column("trial_id"), column("objective"), column("value"), column("value_type"))
_ATTRS = table("trial_user_attributes", column("trial_id"), column("key"), column("value_json"))


@dataclass
class _StudyCache:
    study_id: int
    by_trial_id: dict[int, TrialRecord] = field(default_factory=dict)
    #: (number, state, start) per trial id as last read: SQLite reuses the ids of a deleted study
    heads: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    #: ids of the trials last read unfinished (RUNNING, WAITING): the only old ones that can change
    unfinished: set[int] = field(default_factory=set)
    top: int = -1  # the largest trial id read
    last_start: Any = None  # the latest start time read, as the database returns it
    ordered: list[TrialRecord] | None = None  # the records by number, until something changes


def _value(raw: float | None, kind: str) -> float:
    if kind == "INF_POS":
        return math.inf
    if kind == "INF_NEG":
        return -math.inf
    return float(raw) if raw is not None else math.nan


def _state_name(raw: Any) -> str:
    """An enum column as its name (SQLite returns the text, some drivers an enum member)."""
    return str(getattr(raw, "name", raw))


def _when(raw: Any) -> datetime | None:
    if raw is None or isinstance(raw, datetime):
        return raw
    return datetime.fromisoformat(str(raw))


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


class StudyReader:
    """Trials of the studies in one storage as records, cached so that a refresh reads only changes."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self._references: dict[str, tuple[float, float] | None] = {}
        self._cache: dict[str, _StudyCache] = {}
        self._engine: sqlalchemy.engine.Engine | None = None
        if isinstance(storage, optuna.storages.RDBStorage):
            revision = self._schema_revision(storage.engine)
            if revision in KNOWN_SCHEMA_REVISIONS:
                self._engine = storage.engine
            else:
                logger.info("Optuna schema revision %r is not known to the fast reader; using Optuna's API", revision)

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        """The storage it reads (writers such as the dashboard's notes use the same one)."""
        return self._storage

    @property
    def fast(self) -> bool:
        """Whether trials are read with plain SQL (True) or through Optuna's API (False)."""
        return self._engine is not None

    @staticmethod
    def _schema_revision(engine: sqlalchemy.engine.Engine) -> str | None:
        try:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except sqlalchemy.exc.SQLAlchemyError:
            return None
        return None if row is None else str(row[0])

    def study_names(self) -> list[str]:
        try:
            return study_names(self._storage)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StorageError(f"storage: cannot list the studies ({_reason(exc)})") from None

    def hv_reference(self, name: str) -> tuple[float, float] | None:
        """Study ``name``'s fixed hypervolume reference (GFLOPs, Dice), read once (it never changes)."""
        if name not in self._references:
            try:
                study_id = self._storage.get_study_id_from_name(name)
                self._references[name] = hv_reference(self._storage.get_study_user_attrs(study_id))
            except (KeyError, sqlalchemy.exc.SQLAlchemyError):
                return None
        return self._references[name]

    def records(self, name: str) -> list[TrialRecord]:
        """Every trial of study ``name`` as a record, in trial-number order.

        Raises ``StudyNotFoundError`` (listing the studies) for an unknown name and ``StorageError``
        if the database cannot be read.
        """
        try:
            if self._engine is None:
                return trial_records(load_study(self._storage, name))
            with self._lock:
                return self._read(self._engine, name)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StorageError(f"storage: cannot read study {name!r} ({_reason(exc)})") from None

    def _read(self, engine: sqlalchemy.engine.Engine, name: str) -> list[TrialRecord]:
        with engine.connect() as conn:
            row = conn.execute(select(_STUDIES.c.study_id).where(_STUDIES.c.study_name == name)).first()
            if row is None:
                self._cache.pop(name, None)
                load_study(self._storage, name)  # raises StudyNotFoundError with the listing
                raise StorageError(f"storage: study {name!r} vanished while it was being read")
            study_id = int(row[0])
            names = conn.execute(
                select(_STUDY_SYSTEM.c.value_json).where(
                    _STUDY_SYSTEM.c.study_id == study_id, _STUDY_SYSTEM.c.key == "study:metric_names"
                )
            ).first()
            objectives = tuple(json.loads(names[0])) if names else OBJECTIVES
            cache = self._cache.get(name)
            if cache is None or cache.study_id != study_id:  # new, or deleted and created under a new id
                cache = self._cache[name] = _StudyCache(study_id)
            heads, complete = self._heads(conn, study_id, cache)
            known, seen = cache.by_trial_id, cache.heads
            stale = {
                int(h[0])
                for h in heads
                if seen.get(int(h[0])) != (h[1], h[2], h[3]) or _state_name(h[2]) not in _FINISHED
            }
            if stale:
                cache.ordered = None
                values, attrs = self._details(
                    conn, study_id, sorted(stale), everything=len(stale) == len(heads) == complete
                )
                for trial_id, number, state, start, end in heads:
                    if int(trial_id) not in stale:
                        continue
                    began, ended = _when(start), _when(end)
                    duration = (ended - began).total_seconds() if began is not None and ended is not None else None
                    vals = values.get(int(trial_id))
                    known[int(trial_id)] = record_from_parts(
                        int(number),
                        _state_name(state),
                        tuple(vals[k] for k in sorted(vals)) if vals else None,
                        attrs.get(int(trial_id), {}),
                        duration,
                        objectives,
                    )
                    seen[int(trial_id)] = (number, state, start)
                    if _state_name(state) in _FINISHED:
                        cache.unfinished.discard(int(trial_id))
                    else:
                        cache.unfinished.add(int(trial_id))
                    cache.top = max(cache.top, int(trial_id))
            cache.last_start = _latest_start(heads, cache.last_start)
            if complete == len(heads):  # every head was read: drop the trials that are gone
                gone = set(known) - {int(h[0]) for h in heads}
                for trial_id in gone:
                    del known[trial_id]
                    del seen[trial_id]
                    cache.unfinished.discard(trial_id)
                if gone:
                    cache.ordered = None
                    cache.top = max(known, default=-1)
            if cache.ordered is None:
                cache.ordered = sorted(known.values(), key=lambda r: r.number)
            return list(cache.ordered)

    @staticmethod
    def _heads(conn: sqlalchemy.engine.Connection, study_id: int, cache: _StudyCache) -> tuple[Sequence[Any], int]:
        """The heads (id, number, state, start, end) of the trials that may have changed since the
        last read, and the study's trial count; all heads on a first read.

        A refresh asks only for trials newer than the last read, unfinished, or unfinished when
        last read (Optuna never changes a finished trial), and counts the study's trials: when the
        count, or the latest start, is not what the cache and the new trials make, something was
        deleted or an id reused (a study deleted and created again), and every head is read
        again. Reading every head took 0.12 s for a 50,000-trial study with nothing new, and a
        first visit reads it twice (the study list and the front).
        """
        t = _TRIALS.c
        query = select(t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete)
        in_study = t.study_id == study_id
        if cache.heads and len(cache.unfinished) <= _CHUNK:
            changed = _rows(
                conn,
                query.where(
                    in_study,
                    or_(
                        t.trial_id > cache.top,
                        cast(t.state, String).not_in(sorted(_FINISHED)),  # PostgreSQL: an enum column
                        t.trial_id.in_(sorted(cache.unfinished)),
                    ),
                ),
            )
            # asked after: a trial added in between makes the count disagree, and all is read again
            count, last = conn.execute(select(func.count(), func.max(t.datetime_start)).where(in_study)).one()
            new = sum(1 for h in changed if int(h[0]) not in cache.heads)
            if int(count) == len(cache.heads) + new and last == _latest_start(changed, cache.last_start):
                return changed, int(count)
        heads = _rows(conn, query.where(in_study))
        cache.last_start = None
        return heads, len(heads)

    @staticmethod
    def _details(
        conn: sqlalchemy.engine.Connection, study_id: int, trial_ids: Sequence[int], *, everything: bool
    ) -> tuple[dict[int, dict[int, float]], dict[int, dict[str, Any]]]:
        values: dict[int, dict[int, float]] = {}
        attrs: dict[int, dict[str, Any]] = {}
        v, a = _VALUES.c, _ATTRS.c
        value_query = select(v.trial_id, v.objective, v.value, v.value_type)
        attr_query = select(a.trial_id, a.key, a.value_json)
        if everything:  # first read: one join each rather than thousands of ids
            in_study = _TRIALS.c.study_id == study_id
            queries = [
                (
                    value_query.join(_TRIALS, _TRIALS.c.trial_id == v.trial_id).where(in_study),
                    attr_query.join(_TRIALS, _TRIALS.c.trial_id == a.trial_id).where(in_study),
                )
            ]
        else:
            queries = [
                (value_query.where(v.trial_id.in_(chunk)), attr_query.where(a.trial_id.in_(chunk)))
                for chunk in _chunks(list(trial_ids))
            ]
        for values_sql, attrs_sql in queries:
            for trial_id, objective, value, kind in _rows(conn, values_sql):
                values.setdefault(int(trial_id), {})[int(objective)] = _value(value, _state_name(kind))
            rows = []
            for row in _rows(conn, attrs_sql):
                if row[1] == ATTR_HISTORY:  # decoded when a view uses it
                    attrs.setdefault(int(row[0]), {})[ATTR_HISTORY] = JSONHistory(str(row[2]))
                else:
                    rows.append(row)
            # One JSON document for all attributes: a single parser call instead of one per value.
            decoded = json.loads("[" + ",".join(str(row[2]) for row in rows) + "]")
            for (trial_id, key, _), value in zip(rows, decoded, strict=True):
                attrs.setdefault(int(trial_id), {})[str(key)] = value
        return values, attrs


def _latest_start(heads: Iterable[Sequence[Any]], previous: Any) -> Any:
    """The latest start among ``heads`` and ``previous`` (None: none started), as the database returns it."""
    starts = [h[3] for h in heads if h[3] is not None]
    if previous is not None:
        starts.append(previous)
    return max(starts) if starts else None


def _rows(conn: sqlalchemy.engine.Connection, statement: sqlalchemy.Select[Any]) -> Sequence[Any]:
    """The rows of ``statement`` as the driver returns them: SQLAlchemy's row objects cost about
    1.3 µs a row (a 50,000-trial study's 520,000 attribute rows: 1.1 s, the driver's 0.4 s)."""
    result = conn.execute(statement)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()
