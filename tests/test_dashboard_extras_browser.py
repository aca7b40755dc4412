"""What users of optuna-dashboard would miss (issue 14), used in Chromium as a user would: the
history and importance tabs, the trials table's filters, columns, CSV and overlaid curves, a trial's
own address, the GFLOPs budget, and studies created after the server started."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards._views import under_budget
from studies import complete_records, create_study, knee_record, open_storage, pareto_records, trial_records
from tests._browser import (
    chrome,
    clipboard_allowed,
    clipboard_text,
    console_errors,
    require_browser,
    screenshot,
    served,
    text_of,
    wait_for,
)
from tests._studyfactory import make_rich_study, make_study

pytestmark = pytest.mark.browser

#: The traces of the graph inside the element, with plain arrays (numpy arrays arrive as typed arrays).
GRAPH_JS = """
var g = document.querySelector(arguments[0] + ' .js-plotly-plot');
if (!g || !g._fullData) return null;
if (!g._fullData.length && !(g.layout.annotations || []).length) return null;  // not drawn yet
var plain = v => (v && typeof v.length === 'number' && typeof v !== 'string') ? Array.from(v) : v;
return g._fullData.map(t => ({name: t.name, meta: t.meta, type: t.type, x: plain(t.x), y: plain(t.y),
                              customdata: t.customdata ? Array.from(t.customdata).map(plain) : null}));
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    yield from chrome()


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'extras.db'}"


def traces(driver: Any, graph: str) -> list[dict[str, Any]]:
    return list(driver.execute_script(GRAPH_JS, graph) or [])


def open_tab(driver: Any, tab: str, graph: str) -> list[dict[str, Any]]:
    from selenium.webdriver.common.by import By

    wait_for(lambda: text_of(driver, "study-table"), what="the study list")
    driver.find_element(By.ID, tab).click()
    wait_for(lambda: driver.execute_script(GRAPH_JS, graph) is not None, what=f"the figure of {tab}")
    return traces(driver, graph)


def running_best(values: list[float], maximize: bool) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else (max(out[-1], v) if maximize else min(out[-1], v)))
    return out


def test_history_tab_shows_each_objective_with_the_best_so_far(browser: Any, storage_url: str) -> None:
    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "hist", 60, seed=3))
    done = sorted(complete_records(records), key=lambda r: r.number)
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=hist")
        data = open_tab(browser, "tab-history", "#history")
        best = {t["meta"]: t for t in data if t["name"] == "best so far"}
        points = {t["meta"]: t for t in data if t["name"] == "trials"}
        assert set(best) == set(points) == {"dice", "gflops"}
        assert points["dice"]["x"] == [r.number for r in done]
        assert best["dice"]["y"] == pytest.approx(running_best([r.dice for r in done], True))  # type: ignore[misc]
        assert best["gflops"]["y"] == pytest.approx(running_best([r.gflops for r in done], False))  # type: ignore[misc]
        assert console_errors(browser) == []


def test_importance_tab_ranks_choices_per_objective_or_says_it_needs_trials(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    storage = open_storage(storage_url, create=True)
    make_rich_study(storage, "many", 80, seed=4)
    make_study(storage, "few")  # 4 complete trials
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=many")
        data = open_tab(browser, "tab-importance", "#importance")
        bars = {t["meta"]: t for t in data if t.get("type") == "bar"}
        assert set(bars) == {"dice", "gflops"}
        # GFLOPs grow with width and attention in the synthetic study: the width is among the top two
        assert "spec.channels" in bars["gflops"]["y"][-2:], bars["gflops"]["y"]
        assert all(v >= 0 for v in bars["dice"]["x"])
        browser.find_element(By.ID, "tab-front").click()  # choosing another study on another tab
        browser.get(url + "?study=few")
        open_tab(browser, "tab-importance", "#importance")
        wait_for(
            lambda: browser.execute_script(
                "return document.querySelector('#importance').textContent.indexOf('needs ≥ 10 complete trials (has 4)')"
                " >= 0;"
            ),
            what="the 'needs trials' note",
        )
        assert console_errors(browser) == []


def table_column(driver: Any, column: str) -> list[str]:
    return list(
        driver.execute_script(
            "var cells = document.querySelectorAll('#trials-table td[data-dash-column=\"' + arguments[0] + '\"]');"
            "return Array.from(cells).map(e => e.innerText);",
            column,
        )
    )


def test_trials_table_filters_ranges_hides_columns_downloads_csv_and_overlays_curves(
    browser: Any, storage_url: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "table", 60, seed=5))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=table")
        wait_for(lambda: text_of(browser, "study-table"), what="the study list")
        browser.find_element(By.ID, "tab-trials").click()
        wait_for(lambda: table_column(browser, "trial"), what="the trials table")
        box = browser.find_element(By.CSS_SELECTOR, "#trials-table th.dash-filter[data-dash-column='dice'] input")
        box.send_keys(">0.7", Keys.ENTER)
        expected = sorted(r.number for r in records if r.state in ("COMPLETE", "PRUNED") and (r.dice or 0) > 0.7)
        wait_for(lambda: len(table_column(browser, "trial")) == min(len(expected), 25), what="the filtered rows")
        assert all(float(v) > 0.7 for v in table_column(browser, "dice"))
        assert len(expected) < len(records)
        # hide a column
        browser.find_element(
            By.CSS_SELECTOR, "#trials-table th[data-dash-column='params'] .column-header--hide"
        ).click()
        wait_for(lambda: not table_column(browser, "params"), what="the params column hidden")
        # download what is shown
        browser.find_element(By.CSS_SELECTOR, "#trials-table button.export").click()
        files = wait_for(lambda: [p for p in downloads.iterdir() if p.suffix == ".csv"], what="the CSV download")
        time.sleep(0.3)
        with files[0].open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
        assert sorted(int(r["trial"]) for r in rows) == expected and "params" not in rows[0]
        # tick two trials: their learning curves are overlaid, named by trial and architecture
        ticks = browser.find_elements(By.CSS_SELECTOR, "#trials-table td.dash-select-cell input")
        shown = [int(v) for v in table_column(browser, "trial")]
        ticks[0].click()
        ticks[1].click()
        names = wait_for(
            lambda: len(traces(browser, "#curves")) == 2 and [t["name"] for t in traces(browser, "#curves")],
            what="two learning curves",
        )
        by_number = {r.number: r for r in records}
        assert names == [f"trial {n} · {by_number[n].label}" for n in shown[:2]]
        screenshot(browser, "dashboard-trials-table")
        assert console_errors(browser) == []


def test_a_trial_has_its_own_address(browser: Any, storage_url: str) -> None:
    from tests.test_dashboard_browser import click_front_point

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "addr", 60, seed=6))
    number = complete_records(records)[3].number
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + f"?study=addr&trial={number}")
        title = wait_for(lambda: text_of(browser, "detail-title"), what="the trial of the address")
        assert f"Trial {number} of addr" in title
        wait_for(lambda: traces(browser, "#pareto"), what="the front")
        clicked = int(click_front_point(browser, "#pareto .js-plotly-plot", "Pareto set", 0)[1])
        wait_for(lambda: f"Trial {clicked} of addr" in text_of(browser, "detail-title"), what="the clicked trial")
        search = wait_for(lambda: f"trial={clicked}" in browser.execute_script("return location.search") and
                          browser.execute_script("return location.search"), what="the address")  # fmt: skip
        assert search == f"?study=addr&trial={clicked}"
        browser.get(url + search)  # the address opens it again
        wait_for(lambda: f"Trial {clicked} of addr" in text_of(browser, "detail-title"), what="the reopened trial")
        browser.get(url + "?study=addr&trial=9999")
        wait_for(lambda: "Trial 9999 is not in study 'addr'" in text_of(browser, "detail"), what="a missing trial")
        assert console_errors(browser) == []


def test_the_copy_button_puts_the_export_command_on_the_clipboard(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "copy", 40, seed=8))
    number = pareto_records(records)[1].number
    with served(browser, storage_url, refresh_s=60) as url, clipboard_allowed(browser):
        browser.get(url + f"?study=copy&trial={number}")
        command = wait_for(lambda: text_of(browser, "export-command"), what="the export command")
        assert command.startswith(f"nas export copy --trial {number} --storage "), command
        browser.find_element(By.ID, "copy-export").click()
        wait_for(lambda: clipboard_text(browser) == command, what=f"{command!r} on the clipboard")
        assert console_errors(browser) == []


def test_a_gflops_budget_recomputes_the_front(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "budget", 120, seed=7))
    front = pareto_records(records)
    costs = sorted(r.gflops or 0.0 for r in front)
    whole_knee = knee_record(records)
    below = [g for g in costs if g < (whole_knee.gflops or 0.0)]
    assert len(below) >= 2, costs
    budget = round((below[-1] + (whole_knee.gflops or 0.0)) / 2, 5)  # just below the whole front's knee
    expected = pareto_records(under_budget(records, budget))
    knee = knee_record(under_budget(records, budget)).number
    assert knee != whole_knee.number  # the knee is the budget's, not the whole front's
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=budget")
        wait_for(lambda: traces(browser, "#pareto"), what="the front")
        box = browser.find_element(By.ID, "budget")
        box.send_keys(str(budget), Keys.ENTER)

        def front_now() -> list[int] | None:
            data = traces(browser, "#pareto")
            members = [t for t in data if t["name"] == "Pareto set"]
            return sorted(int(c[1]) for c in members[0]["customdata"]) if members else None

        wait_for(lambda: front_now() == sorted(r.number for r in expected), what="the front under the budget")
        xs = [x for t in traces(browser, "#pareto") if t.get("customdata") for x in t["x"]]
        assert xs and max(xs) <= budget
        notes = browser.execute_script(
            "return document.querySelector('#pareto .js-plotly-plot').layout.annotations.map(a => a.text);"
        )
        assert notes == [f"knee: trial {knee}"]
        assert console_errors(browser) == []


def test_the_study_dropdown_lists_studies_created_after_the_server_started(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    storage = open_storage(storage_url, create=True)
    make_study(storage, "first")
    with served(browser, storage_url, refresh_s=0.5) as url:
        browser.get(url + "?study=first")
        wait_for(lambda: "first" in text_of(browser, "study-table"), what="the study list")
        create_study(storage, "second")
        wait_for(lambda: "second" in text_of(browser, "study-table"), what="the new study in the list")
        browser.find_element(By.ID, "studies").click()
        options = wait_for(
            lambda: browser.execute_script(
                "return Array.from(document.querySelectorAll('.dash-dropdown-option')).map(e => e.innerText.trim());"
            ),
            what="the dropdown's options",
        )
        assert options == ["first", "second"]
        browser.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")[1].click()  # choose it
        wait_for(lambda: "Study 'second' has no trials yet" in text_of(browser, "empty-message"), what="the new study")
        assert console_errors(browser) == []


def test_the_report_draws_the_history_and_the_importance(browser: Any, storage_url: str, tmp_path: Path) -> None:
    from dashboards import report_html

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "rep", 60, seed=8))
    page = tmp_path / "report.html"
    page.write_text(report_html("rep", records, storage=storage_url))
    browser.get(page.as_uri())
    for div in ("history", "importance"):
        browser.execute_script("document.getElementById(arguments[0]).scrollIntoView();", div)
        wait_for(
            lambda d=div: browser.execute_script(
                "var g = document.getElementById(arguments[0]); return g._fullData && g._fullData.length;", d
            ),
            what=f"the report's {div} figure",
        )
    metas = browser.execute_script(
        "return document.getElementById('history')._fullData.filter(t => t.name === 'best so far').map(t => t.meta);"
    )
    bars = browser.execute_script(
        "return document.getElementById('importance')._fullData.filter(t => t.type === 'bar').map(t => t.meta);"
    )
    assert metas == ["dice", "gflops"] and bars == ["dice", "gflops"]
    assert console_errors(browser) == []


def test_notes_on_a_study_and_a_trial_are_saved_in_the_storage(browser: Any, storage_url: str) -> None:
    import optuna
    from selenium.webdriver.common.by import By

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "noted", 30, seed=9))
    number = complete_records(records)[2].number
    kept = {t.number: dict(t.user_attrs) for t in optuna.load_study(study_name="noted", storage=storage_url).trials}
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + f"?study=noted&trial={number}")
        wait_for(lambda: f"Trial {number} of noted" in text_of(browser, "detail-title"), what="the trial")
        box = wait_for(
            lambda: next((e for e in browser.find_elements(By.ID, "trial-note") if e.is_displayed()), None),
            what="the trial's note box",
        )
        box.send_keys("knee candidate: confirm with seeds")
        browser.find_element(By.ID, "save-trial-note").click()
        wait_for(lambda: "Saved trial" in text_of(browser, "trial-note-status"), what="the trial note saved")
        study = optuna.load_study(study_name="noted", storage=storage_url)
        assert study.user_attrs[f"note:trial:{number}"] == "knee candidate: confirm with seeds"
        assert {t.number: dict(t.user_attrs) for t in study.trials} == kept  # recorded data untouched

        browser.find_element(By.ID, "study-note-summary").click()
        browser.find_element(By.ID, "study-note").send_keys("synthetic baseline")
        browser.find_element(By.ID, "save-study-note").click()
        wait_for(lambda: "Saved the study's note" in text_of(browser, "study-note-status"), what="the study note")
        assert optuna.load_study(study_name="noted", storage=storage_url).user_attrs["note"] == "synthetic baseline"

        browser.get(url + f"?study=noted&trial={number}")  # a reload shows both notes
        wait_for(
            lambda: (
                [e.get_attribute("value") for e in browser.find_elements(By.ID, "trial-note")]
                == ["knee candidate: confirm with seeds"]
            ),
            what="the saved trial note",
        )
        wait_for(lambda: "synthetic baseline" in text_of(browser, "study-note-summary"), what="the saved study note")
        # someone else changes the note meanwhile: this page's save is refused, theirs is kept
        study.set_user_attr(f"note:trial:{number}", "changed by a colleague")
        browser.find_element(By.ID, "trial-note").send_keys(" (mine)")
        browser.find_element(By.ID, "save-trial-note").click()
        wait_for(lambda: "changed elsewhere" in text_of(browser, "trial-note-status"), what="the refused save")
        screenshot(browser, "dashboard-notes")
        assert study.user_attrs[f"note:trial:{number}"] == "changed by a colleague"
        assert optuna.load_study(study_name="noted", storage=storage_url).user_attrs[f"note:trial:{number}"] == (
            "changed by a colleague"
        )
        assert console_errors(browser) == []


def test_a_click_on_a_trial_number_in_the_table_opens_the_trial(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "rows", 40, seed=10))
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=rows")
        wait_for(lambda: text_of(browser, "study-table"), what="the study list")
        browser.find_element(By.ID, "tab-trials").click()
        wait_for(lambda: table_column(browser, "trial"), what="the trials table")
        cells = browser.find_elements(By.CSS_SELECTOR, "#trials-table td[data-dash-column='trial']")
        number = int(cells[4].text)
        cells[4].click()
        title = wait_for(lambda: text_of(browser, "detail-title"), what="the trial opened from its row")
        label = next(r.label for r in records if r.number == number)
        assert f"Trial {number} of rows" in title and label in title
        assert browser.find_element(By.ID, "pareto").is_displayed()  # on the front's tab
        assert browser.execute_script("return location.search") == f"?study=rows&trial={number}"
        assert console_errors(browser) == []
