"""The served dashboard and the offline report in a real headless Chromium.

Each test checks what a user would see: no console errors, the Pareto trace holding exactly the
study's Pareto set, a click that shows the architecture; screenshots go to ``test-artefacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from dashboards import report_html
from studies import create_study, open_storage, pareto_records, trial_records
from tests._browser import chrome, console_errors, require_browser, screenshot, served, text_of, wait_for
from tests._studyfactory import make_rich_study, synthetic_trials

pytestmark = pytest.mark.browser

FRONT_JS = """
var g = document.querySelector(arguments[0]);
if (!g || !g.data) return null;
return g.data.filter(t => t.name && t.name.indexOf('Pareto set') === 0)
             .map(t => [t.name, t.x.length]);
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    yield from chrome()


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dash.db'}"


def front_traces(driver: Any, selector: str = "#pareto .js-plotly-plot") -> dict[str, int]:
    return dict(driver.execute_script(FRONT_JS, selector) or [])


def click_front_point(driver: Any, plot_selector: str, trace_name: str, index: int) -> list[Any]:
    """Move the mouse onto the centre of one marker of the named trace and click it; return its customdata."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'center'});", plot_selector)
    x, y = driver.execute_script(
        "var gd = document.querySelector(arguments[0]); var t = gd.data.filter(t => t.name === arguments[1])[0];"
        "var i = (arguments[2] + t.x.length) % t.x.length, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;"
        "var box = gd.querySelector('svg.main-svg').getBoundingClientRect();"
        "return [box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i])];",
        plot_selector,
        trace_name,
        index,
    )
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(round(x), round(y)).pause(0.3).click()
    actions.perform()
    return list(
        driver.execute_script(
            f"var g = document.querySelector('{plot_selector}');"
            f"var c = g.data.filter(t => t.name === '{trace_name}')[0].customdata;"
            f"return c[({index} + c.length) % c.length];"
        )
    )


def test_dashboard_renders_the_front_and_a_click_shows_the_architecture(browser: Any, storage_url: str) -> None:
    storage = open_storage(storage_url, create=True)
    records = trial_records(make_rich_study(storage, "zoo", 120, seed=4))
    make_rich_study(storage, "other", 30, seed=5)
    with served(browser, storage_url) as url:
        browser.get(url + "?study=zoo")
        traces = wait_for(lambda: front_traces(browser), what="the Pareto trace")
        assert traces == {"Pareto set": len(pareto_records(records))}
        assert "zoo" in text_of(browser, "study-table") and "other" in text_of(browser, "study-table")
        screenshot(browser, "dashboard-front")
        number = int(click_front_point(browser, "#pareto .js-plotly-plot", "Pareto set", -1)[1])
        title = wait_for(lambda: text_of(browser, "detail-title"), what="the trial detail")
        label = next(r.label for r in records if r.number == number)
        assert f"Trial {number} of zoo" in title and label in title
        assert wait_for(lambda: browser.execute_script("return document.getElementById('arch-diagram') !== null"))
        assert f"nas export zoo --trial {number} --storage {storage_url}" in text_of(browser, "export-command")
        screenshot(browser, "dashboard-click")
        assert console_errors(browser) == []


def test_every_tab_renders(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    storage = open_storage(storage_url, create=True)
    records = trial_records(make_rich_study(storage, "tabs", 80, seed=6))
    with served(browser, storage_url) as url:
        browser.get(url)
        wait_for(lambda: front_traces(browser), what="the Pareto trace")
        for tab in ("ablation", "parallel", "history", "importance"):
            check = f"#{tab} .js-plotly-plot"
            browser.find_element(By.ID, f"tab-{tab}").click()
            count = wait_for(
                lambda c=check: browser.execute_script(
                    f"var g = document.querySelector('{c}'); return g && g.data ? g.data.length : 0;"
                ),
                what=tab,
            )
            assert count >= 1
            screenshot(browser, f"dashboard-{tab}")
        browser.find_element(By.ID, "tab-trials").click()
        wait_for(
            lambda: "INFEASIBLE" in text_of(browser, "trials-table") or "COMPLETE" in text_of(browser, "trials-table")
        )
        shown = browser.execute_script(
            "return document.querySelectorAll('#trials-table tbody tr td[data-dash-column=\"trial\"]').length"
        )
        assert shown == min(25, sum(r.state != "WAITING" for r in records))  # one page
        assert console_errors(browser) == []


def test_an_idle_dashboard_does_not_redraw(browser: Any, storage_url: str) -> None:
    storage = open_storage(storage_url, create=True)
    make_rich_study(storage, "idle", 40, seed=12)
    with served(browser, storage_url, refresh_s=0.5) as url:
        browser.get(url + "?study=idle")
        wait_for(lambda: front_traces(browser), what="the Pareto trace")
        browser.execute_script("window.nasFirst = document.querySelector('#pareto .js-plotly-plot').data;")
        time.sleep(3)  # six refresh periods with nothing new in the storage
        same = browser.execute_script(
            "return document.querySelector('#pareto .js-plotly-plot').data === window.nasFirst;"
        )
        assert same, "the figure was sent again although the study did not change"
        assert console_errors(browser) == []


def test_overlay_of_two_studies_draws_both_fronts(browser: Any, storage_url: str) -> None:
    storage = open_storage(storage_url, create=True)
    a = trial_records(make_rich_study(storage, "skin", 70, seed=7))
    b = trial_records(make_rich_study(storage, "vessels", 50, seed=8))
    with served(browser, storage_url) as url:
        browser.get(url + "?study=skin&study=vessels")
        traces = wait_for(lambda: len(front_traces(browser)) == 2 and front_traces(browser), what="two fronts")
        assert traces == {"Pareto set · skin": len(pareto_records(a)), "Pareto set · vessels": len(pareto_records(b))}
        screenshot(browser, "dashboard-overlay")
        assert console_errors(browser) == []


def test_the_dashboard_follows_a_running_search(browser: Any, storage_url: str) -> None:
    storage = open_storage(storage_url, create=True)
    study = create_study(storage, "live")
    with served(browser, storage_url, refresh_s=0.5) as url:
        browser.get(url + "?study=live")
        wait_for(lambda: "has no trials yet" in text_of(browser, "empty-message"), what="the empty-study message")
        study.add_trials(synthetic_trials(40, seed=9))
        expected = len(pareto_records(trial_records(study)))
        wait_for(  # trials land one by one: wait for the last of them
            lambda: (
                front_traces(browser).get("Pareto set") == expected and "live\t40\t" in text_of(browser, "study-table")
            ),
            what="the refreshed front and study list",
        )
        assert text_of(browser, "empty-message").strip() == ""
        assert console_errors(browser) == []


@pytest.mark.parametrize(
    ("setup", "address", "expected"),
    [
        ("empty", "?study=fresh", "Study 'fresh' has no trials yet"),
        ("failed", "?study=broken", "Study 'broken' has no complete trial yet (3 FAIL). First error: boom"),
        ("empty", "?study=nope", "study 'nope' not found"),
    ],
)
def test_studies_with_nothing_to_show_get_a_readable_page(
    browser: Any, storage_url: str, setup: str, address: str, expected: str
) -> None:
    storage = open_storage(storage_url, create=True)
    create_study(storage, "fresh")
    if setup == "failed":
        study = create_study(storage, "broken")
        for _ in range(3):
            trial = study.ask()
            trial.set_user_attr("error", "boom\nTraceback (most recent call last): ...")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    with served(browser, storage_url) as url:
        browser.get(url + address)
        message = wait_for(lambda: text_of(browser, "empty-message"), what="the message")
        assert expected in message
        assert "Traceback" not in browser.page_source
        screenshot(browser, f"dashboard-{setup}-{address.split('=')[1]}")
        assert console_errors(browser) == []


def test_a_storage_that_breaks_while_open_is_a_message_not_a_crash(
    browser: Any, storage_url: str, tmp_path: Path
) -> None:
    import sqlite3

    storage = open_storage(storage_url, create=True)
    make_rich_study(storage, "fragile", 20, seed=11)
    with served(browser, storage_url, refresh_s=0.5) as url:
        browser.get(url + "?study=fragile")
        wait_for(lambda: front_traces(browser), what="the Pareto trace")
        with sqlite3.connect(tmp_path / "dash.db") as conn:
            conn.execute("ALTER TABLE trials RENAME TO trials_moved")
        banner = wait_for(lambda: text_of(browser, "banner"), what="the storage error banner")
        assert "cannot read study 'fragile'" in banner and "no such table" in banner
        assert "Traceback" not in browser.page_source
        screenshot(browser, "dashboard-storage-broken")
        assert console_errors(browser) == []


def test_the_report_renders_offline_and_a_click_shows_the_architecture(
    browser: Any, storage_url: str, tmp_path: Path
) -> None:
    storage = open_storage(storage_url, create=True)
    records = trial_records(make_rich_study(storage, "rep", 90, seed=10))
    page = tmp_path / "report.html"
    page.write_text(report_html("rep", records, storage=storage_url))
    browser.get(page.as_uri())
    traces = wait_for(lambda: front_traces(browser, "#pareto"), what="the report's Pareto trace")
    assert traces == {"Pareto set": len(pareto_records(records))}
    number = int(click_front_point(browser, "#pareto", "Pareto set", 0)[1])
    title = wait_for(lambda: text_of(browser, "detail-title"), what="the report's trial detail")
    assert f"Trial {number}:" in title and next(r.label for r in records if r.number == number) in title
    assert browser.execute_script("return document.querySelector('#detail svg') !== null")
    screenshot(browser, "report-click")
    assert console_errors(browser) == []
