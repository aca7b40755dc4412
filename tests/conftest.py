"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: The real datasets for the learning checks (never copied into the project): ../shared/data by default.
SHARED_DATA = Path(os.environ.get("NAS_SHARED_DATA", REPO.parent / "shared" / "data"))


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
