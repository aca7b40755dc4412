"""The benchmark harness runs (its figures are written down, not asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import REPO


def test_search_space_benchmark_quick_mode_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_search_space", REPO / "bench" / "search_space.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "results.md"
    assert module.main(["--quick", "--output", str(output)]) == 0
    text = output.read_text()
    assert "Self-attention at a 64x64 skip level" in text and "Worst deviation" in text
