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


@pytest.mark.parametrize("command", ["status", "dashboard"])
def test_reading_a_study_from_the_cli_imports_neither_torch_nor_ray(command: str, tmp_path: Path) -> None:
    """``nas status`` runs, and ``nas dashboard`` builds its parser and the app's modules load,
    without torch, Ray or pandas: a command imports only its own module (the dashboard server must
    answer within 2 s and stay small)."""
    from studies import open_storage
    from tests._studyfactory import make_study

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    make_study(open_storage(url, create=True), "s")
    run = {
        "status": f"main(['status', 's', '--storage', {url!r}])",
        "dashboard": "build_parser(['dashboard']).parse_args(['dashboard']); import dashboards",
    }[command]
    code = (
        "import sys\nfrom nas.cli import build_parser, main\n"
        f"result = {run}\nassert result in (0, None) or hasattr(result, 'handler'), result\n"
        "print(sorted(m for m in ('torch', 'ray', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
