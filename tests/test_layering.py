"""The dependency direction of STYLE.md, enforced."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ALLOWED = {
    "ray": {"nas"},
    "optuna": {"studies", "nas"},
    "plotly": {"dashboards"},
    "dash": {"dashboards"},
    "werkzeug": {"dashboards"},
    "selenium": set(),  # the browser tests' tool, never the product's
}
PACKAGES = ("search_spaces", "trainers", "studies", "dashboards", "nas")
LOWER = {  # which first-party packages each package may import
    "search_spaces": set(),
    "trainers": {"search_spaces"},
    "studies": {"search_spaces", "trainers"},
    "dashboards": {"search_spaces", "trainers", "studies"},
    "nas": {"search_spaces", "trainers", "studies", "dashboards"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", PACKAGES)
def test_third_party_and_first_party_imports_follow_the_layers(package: str) -> None:
    for path in (REPO / package).rglob("*.py"):
        roots = imported_roots(path)
        for library, owners in ALLOWED.items():
            assert library not in roots or package in owners, f"{path}: imports {library}"
        upward = (roots & set(PACKAGES)) - LOWER[package] - {package}
        assert not upward, f"{path}: imports {upward} against the dependency direction"


def test_search_spaces_and_trainers_import_with_ray_and_optuna_blocked() -> None:
    code = (
        "import sys\n"
        "for name in ('ray', 'optuna', 'plotly'):\n"
        "    sys.modules[name] = None\n"
        "import search_spaces, trainers\n"
        "spec = search_spaces.ArchSpec()\n"
        "search_spaces.build_model(spec)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
