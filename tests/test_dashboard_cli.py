"""``nas dashboard`` serves the app from the command line; a busy port is a one-line error."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from nas.cli import main
from studies import open_storage
from tests._studyfactory import make_study


def test_nas_dashboard_serves_the_app(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    make_study(open_storage(url, create=True), "served")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", "dashboard", "--storage", url, "--port", "0", "--study", "served"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)  # never hang CI on a stalled server
        assert ready, "nas dashboard printed nothing within 120 s"
        line = proc.stdout.readline()
        failure = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        assert line.startswith(f"dashboard of {url}: http://127.0.0.1:"), line + failure
        address = line.split(": ", 1)[1].split()[0]
        with urllib.request.urlopen(address, timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200 and "attention-nas dashboard" in page
        with urllib.request.urlopen(address + "_dash-layout", timeout=30) as response:
            assert b"served" in response.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_busy_port_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    make_study(open_storage(url, create=True), "s")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["dashboard", "--storage", url, "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and f"port {port} on 127.0.0.1 is in use" in err and len(err.strip().splitlines()) == 1


def test_report_export_commands_name_the_storage_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboards._report import unpack_report_data

    monkeypatch.chdir(tmp_path)
    make_study(open_storage("sqlite:///nas.db", create=True), "rel")
    assert main(["report", "rel", "--storage", "sqlite:///nas.db", "-o", "r.html"]) == 0
    details = unpack_report_data((tmp_path / "r.html").read_text())["details"]
    command = next(iter(details.values()))["export"]
    assert f"--storage sqlite:///{tmp_path / 'nas.db'}" in command  # works from any folder


def test_the_server_answers_before_it_has_read_the_study(tmp_path: Path) -> None:
    """The first response does not wait for the study: the server starts, and answers ``/``, while
    every read of the trials is held up (Dash calls the layout when it is set and on the first
    request; neither may read a 5,000-trial study first). The page's own layout request then waits
    for the read, and gets the front."""
    import threading

    from dashboards import DashboardServer, create_app
    from studies import StudyReader

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    make_study(open_storage(url, create=True), "slow")
    release = threading.Event()

    class HeldReader(StudyReader):
        def records(self, name: str) -> list:
            assert release.wait(60), "the reads were never released"
            return super().records(name)

    app = create_app(HeldReader(open_storage(url, create=False)), storage_label=url, refresh_s=60, study="slow")
    server = DashboardServer(app, port=0).start()
    try:
        with urllib.request.urlopen(server.url, timeout=20) as response:
            assert response.status == 200 and "attention-nas dashboard" in response.read().decode()
        release.set()
        with urllib.request.urlopen(server.url + "_dash-layout", timeout=60) as response:
            assert b"Pareto set" in response.read()
    finally:
        release.set()
        server.stop()
