"""The README's main job, exactly as a user runs it: the default search on the built-in data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studies import complete_records, load_study, open_storage, trial_records


@pytest.mark.slow
def test_default_search_completes_with_a_report(tmp_path: Path) -> None:
    beside = Path(sys.executable).parent / "nas"
    nas = str(beside) if beside.is_file() else shutil.which("nas")
    assert nas is not None, "the nas console script is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    proc = subprocess.run([nas, "search"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Pareto set" in out
    match = re.search(r"^study (search-\S+):", out, flags=re.MULTILINE)
    assert match, out
    name = match.group(1)
    study = load_study(open_storage("sqlite:///" + str(tmp_path / "nas.db"), create=False), name)
    records = trial_records(study)
    assert len(complete_records([r for r in records if r.stage == "search"])) >= 12
    # The confirm stage ran by default: front members (and their twins) again with fresh seeds, and
    # the front shown is the confirmed one, over architectures, with intervals.
    confirmed = [r for r in complete_records(records) if r.stage == "confirm"]
    assert confirmed and {r.seed for r in confirmed} == {1, 2, 3}
    assert "Front over architectures" in out and "confirmed" in out and "95% interval" in out
    report = tmp_path / "nas-runs" / name / "report.html"
    assert report.is_file() and f"report: {report}" in out
