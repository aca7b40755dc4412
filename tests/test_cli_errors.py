"""Bad input: one readable line on stderr, exit code 2, and nothing written."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main
from studies import open_storage
from tests._studyfactory import make_study


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["search", "--trials", "0"], "--trials: '0' is not valid; expected a positive integer"),
        (["search", "--epochs", "many"], "--epochs: 'many' is not valid"),
        (["search", "--image-size", "40"], "data.size: 40 is not valid"),
        (["search", "--space", "widset"], "--space: 'widset' is neither a named space"),
        (["search", "--study", "bad name!"], "name (given as --study): String should match pattern"),
        (["search", "--storage", "nonsense"], "not a valid SQLAlchemy URL"),
        (["search", "--storage", "sqlite:///missing/dir/x.db"], "does not exist"),
        (["status", "nope"], "no study database"),
        (["export", "nope"], "one of the arguments --trial --knee --max-gflops is required"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["dashboard"], "no study database"),
        (
            ["search", "--data", "lesions.json"],
            "--data: 'lesions.json' is neither 'synthetic', 'synthetic3d' nor a JSON file",
        ),
        (["search", "--loss", "dicey"], "argument --loss: invalid choice: 'dicey'"),
        (["search", "--grad-clip", "-1"], "--grad-clip: '-1' is not valid; expected a number > 0"),
        (["dashboard", "--refresh", "0"], "--refresh: '0' is not valid; expected a number > 0"),
        (["dashboard", "--port", "http"], "--port: 'http' is not valid"),
        (["dashboard", "--port", "70000"], "--port: '70000' is not valid; expected a port number 0..65535"),
        (["report", "x", "-o", "r.html", "--storage", "mysql+nodriver://h/db"], "cannot open it"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    args: list[str], expected: str, in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert list(in_tmp_cwd.iterdir()) == []


def test_unknown_study_and_trial_leave_the_database_untouched(
    in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_study(open_storage("sqlite:///nas.db", create=True), "real", weights_dir=None)
    before = snapshot(in_tmp_cwd)
    for args, expected in (
        (["status", "reel"], "study 'reel' not found (did you mean 'real'?)"),
        (["report", "reel", "-o", "r.html"], "study 'reel' not found"),
        (["export", "real", "--trial", "42"], "--trial 42: study 'real' has no such trial"),
        (["export", "real", "--trial", "4"], "trial is PRUNED"),
        (["report", "real", "-o", "no/such/dir/r.html"], "does not exist"),
        (["dashboard", "--study", "reel"], "study 'reel' not found (did you mean 'real'?)"),
    ):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(in_tmp_cwd) == before


@pytest.mark.parametrize("command", [["status", "x"], ["dashboard"], ["report", "x", "-o", "r.html"]])
def test_unreachable_server_is_one_line(
    command: list[str], in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli([*command, "--storage", "postgresql://u:pw@127.0.0.1:1/db"], capsys)
    assert code == 2 and "cannot open" in err and "pw@" not in err and len(err.strip().splitlines()) == 1
    assert list(in_tmp_cwd.iterdir()) == []


def test_environment_defaults_are_read_and_checked(
    in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAS_TRIALS", "zero")
    code, _, err = run_cli(["search"], capsys)
    assert code == 2 and "NAS_TRIALS='zero'" in err
    monkeypatch.setenv("NAS_TRIALS", "3")
    monkeypatch.setenv("NAS_STORAGE", "sqlite:///elsewhere/x.db")
    code, _, err = run_cli(["search"], capsys)
    assert code == 2 and "elsewhere" in err


def test_console_script_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nas", "--help"], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0
    for command in ("search", "status", "export", "report", "dashboard"):
        assert command in proc.stdout


def test_space_show_counts_and_samples(in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["space", "show", "--samples", "3"], capsys)
    assert code == 0
    assert "distinct architectures: 224" in out
    assert len([line for line in out.splitlines() if line.startswith("  ") and " unet " in line]) == 3
    (in_tmp_cwd / "space.json").write_text('{"blocks": ["none", "ag"], "placements": ["encoder"]}')
    code, _, err = run_cli(["space", "show", "--space", "space.json"], capsys)
    assert code == 2 and "space.blocks: 'ag' cannot be placed" in err
    code, _, err = run_cli(["space", "show", "--space", "nope.json"], capsys)
    assert code == 2 and "neither a named space" in err


def test_a_data_error_names_the_file_the_field_is_in(in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp_cwd / "lesions.json").write_text('{"kind": "folder2d", "path": "lesions", "size": 40}')
    code, _, err = run_cli(["search", "--data", "lesions.json"], capsys)
    assert (
        code == 2 and err.strip() == "nas: error: lesions.json: data.size: 40 is not valid; expected a multiple of 16"
    )
    (in_tmp_cwd / "study.yaml").write_text("data: {kind: folder2d, path: lesions}\n")
    code, _, err = run_cli(["search", "study.yaml"], capsys)
    assert code == 2 and err.strip().startswith("nas: error: study.yaml: data.path: ")
    assert sorted(p.name for p in in_tmp_cwd.iterdir()) == ["lesions.json", "study.yaml"]
