"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: The real datasets for the learning checks (never copied into the project): ../shared/data by default.
SHARED_DATA = Path(os.environ.get("NAS_SHARED_DATA", REPO.parent / "shared" / "data"))


#: A PostgreSQL server for the storage tests (scripts/ensure-postgres.sh starts one; `make test` sets this).
POSTGRES_URL = os.environ.get("NAS_TEST_POSTGRES_URL", "")


def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server (dropped afterwards), as a URL."""
    if not POSTGRES_URL:
        if os.environ.get("NAS_REQUIRE_POSTGRES") == "1":
            pytest.fail("NAS_REQUIRE_POSTGRES=1 but NAS_TEST_POSTGRES_URL is not set (bash scripts/ensure-postgres.sh)")
        pytest.skip(
            "no PostgreSQL server for the tests (export NAS_TEST_POSTGRES_URL=$(bash scripts/ensure-postgres.sh))"
        )
    import psycopg
    import sqlalchemy

    base = sqlalchemy.engine.make_url(POSTGRES_URL)
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty study storage on each backend: a SQLite file, and a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nas.db'}"
    else:
        yield from postgres_database()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty working directory (the CLI's defaults write to the cwd)."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("NAS_"):
            monkeypatch.delenv(key)
    return tmp_path


def nas_process(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``nas ARGS`` as a user runs it: a fresh process in ``cwd``, without the caller's NAS_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "nas", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
