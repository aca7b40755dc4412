"""A real headless Chromium for the dashboard tests (Debian's chromium + chromium-driver, via Selenium).

Without the browser these tests skip, unless ``NAS_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where a
missing browser is an error: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("NAS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NAS_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTEFACTS = Path(os.environ.get("NAS_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts"))


def browser_available() -> bool:
    return Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()


def require_browser() -> None:
    if browser_available():
        return
    message = f"Chromium or ChromeDriver missing ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs them"
    if os.environ.get("NAS_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def chrome() -> Iterator[object]:
    """A headless Chromium session with its console log captured; quit afterwards."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="nas-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: object) -> list[str]:
    """SEVERE entries of the page's console log since the last call."""
    entries = driver.get_log("browser")  # type: ignore[attr-defined]
    return [e["message"] for e in entries if e.get("level") == "SEVERE"]


def screenshot(driver: object, name: str) -> Path:
    """Save a PNG of the page as a test artefact (in ``test-artefacts/``)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def text_of(driver: Any, element_id: str) -> str:
    """The visible text of the element with that id ('' when there is none)."""
    return str(
        driver.execute_script("var e = document.getElementById(arguments[0]); return e ? e.innerText : '';", element_id)
    )


@contextmanager
def served(driver: Any | None, url: str, *, refresh_s: float = 1.0) -> Iterator[str]:
    """Serve the dashboard of storage ``url``; afterwards leave the page first, so that its timer does
    not log refused connections into the next test's console (``driver`` None: no browser)."""
    from dashboards import DashboardServer, create_app
    from studies import StudyReader, open_storage

    reader = StudyReader(open_storage(url, create=False))
    server = DashboardServer(create_app(reader, storage_label=url, refresh_s=refresh_s), port=0).start()
    if driver is not None:
        console_errors(driver)  # start from a clean log
    try:
        yield server.url
    finally:
        if driver is not None:
            driver.get("about:blank")
        server.stop()
        if driver is not None:
            console_errors(driver)


@contextmanager
def clipboard_allowed(driver: Any) -> Iterator[None]:
    """Let pages read and write the system clipboard (as a user's click on "allow" would), and take
    the permission back afterwards: the browser serves the rest of its test module."""
    driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}
    )
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Browser.resetPermissions", {})


def clipboard_text(driver: Any) -> str:
    """What the system clipboard holds, read through the page (inside ``clipboard_allowed``)."""
    return str(
        driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, function(e) { done('cannot read the clipboard: ' + e); });"
        )
    )
