"""The benchmark harnesses run (their figures are written down, not asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO


def load_bench(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # the scripts import their shared helper
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_search_space_benchmark_quick_mode_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "results.md"
    assert load_bench("search_space", monkeypatch).main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "Self-attention at a 64x64 skip level" in text and "Worst deviation" in text


def test_dashboard_benchmark_quick_mode_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "results.md"
    assert load_bench("dashboard", monkeypatch).main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "Loading a 500-trial study, server side" in text and "× Optuna" in text
    assert "In headless Chromium" in text and "Two-objective Pareto mask" in text


def test_training_benchmark_quick_mode_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "results.md"
    monkeypatch.setenv("NAS_SHARED_DATA", str(tmp_path / "absent"))  # synthetic data only: fast and always there
    assert load_bench("training", monkeypatch).main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "MONAI BasicUNet (reference)" in text and "× BasicUNet" in text
    assert "Data pipeline against pre-loaded tensors" in text and "synthetic 128×128" in text


def test_orchestration_benchmark_quick_mode_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "r.md"
    assert load_bench("orchestration", monkeypatch).main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "Our search path against bare Ray Tune + stock OptunaSearch" in text and "ours / reference" in text
    assert "Fraction of a demo search's wall time outside training" in text and "## Notes" in text
