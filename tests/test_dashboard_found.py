"""What a user found wrong with the dashboard and the report (issue 14), each checked in Chromium.

Every test does what the user did and checks what they saw: the trial opened by a click on the
marker under the cursor, the zoom kept across a refresh, the legend's swatches, the page not
moving on a click, REUSED and INFEASIBLE trials listed, and what the first page view downloads.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import IntDistribution

from dashboards import report_html
from studies import create_study, open_storage, pareto_records, record_from_trial, trial_records
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
from tests._studyfactory import make_study, synthetic_trials
from tests.conftest import nas_process

pytestmark = pytest.mark.browser

#: Pixel position (in the viewport) and customdata of every marker of the named trace.
MARKERS_JS = """
var gd = document.querySelector(arguments[0]);
var t = gd.data.filter(t => t.name === arguments[1])[0];
var xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
var box = gd.querySelector('svg.main-svg').getBoundingClientRect();
var out = [];
for (var i = 0; i < t.x.length; i++) {
  out.push([box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i]), t.customdata[i][1]]);
}
return out;
"""
HOVER_JS = "var h = document.querySelector(arguments[0] + ' g.hoverlayer g.hovertext'); return h ? h.textContent : '';"


@pytest.fixture(scope="module")
def browser() -> Any:
    require_browser()
    yield from chrome()


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'found.db'}"


def dense_front_trials(front: int = 16, cloud: int = 160, seed: int = 3) -> list[optuna.trial.FrozenTrial]:
    """A front of ``front`` members, each with dominated trials one to a few pixels away, one at the
    very same pixel, over a cloud of dominated trials; trial 0 is the only ``se`` (all on the front)."""
    rng = random.Random(seed)
    templates = [t.user_attrs for t in synthetic_trials(400, seed=seed) if t.state.name == "COMPLETE"]
    templates = [a for a in templates if a["spec"]["attention"]["block"] != "se"]
    lonely = next(
        t.user_attrs for t in synthetic_trials(400, seed=seed) if t.user_attrs["spec"]["attention"]["block"] == "se"
    )
    points: list[tuple[float, float]] = []
    for i in range(front):
        gflops, dice = 0.02 + 0.01 * i, 0.55 + 0.35 * (1 - math.exp(-i / 6))
        points.append((dice, gflops))
        # same pixel; ~1 px; ~2-3 px; ~4 px away, all dominated by this member
        for dx, dy in ((1e-7, 1e-7), (0.0004, 0.0008), (0.0009, 0.002), (0.0018, 0.0012)):
            points.append((dice - dy, gflops + dx))
    for _ in range(cloud):
        gflops = 0.02 + 0.22 * rng.random()
        best = 0.55 + 0.35 * (1 - math.exp(-((gflops - 0.02) / 0.01) / 6))
        points.append((best - 0.02 - 0.2 * rng.random(), gflops))
    trials = []
    for number, (dice, gflops) in enumerate(points):
        attrs = dict(lonely if number == 0 else templates[number % len(templates)])
        attrs["flops"] = int(gflops * 1e9)
        trials.append(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE,
                values=[dice, gflops],
                params={"arch": 0},
                distributions={"arch": IntDistribution(0, 1)},
                user_attrs=attrs,
            )
        )
    return trials


def numbered_records(trials: list[optuna.trial.FrozenTrial]) -> list[Any]:
    """Records of trials made outside a study, numbered in order, as a study would number them."""
    records = [record_from_trial(t) for t in trials]
    for number, r in enumerate(records):
        object.__setattr__(r, "number", number)
    return records


def dense_study(storage_url: str, name: str = "dense") -> list[Any]:
    study = create_study(open_storage(storage_url, create=True), name)
    study.add_trials(dense_front_trials())
    return trial_records(study)


def move_to(driver: Any, x: float, y: float, *, click: bool) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(round(x), round(y))
    actions.pointer_action.pause(0.15)
    if click:
        actions.pointer_action.click()
    actions.perform()
    ActionChains(driver).pause(0.05).perform()


def click_every_front_member(driver: Any, plot: str, title_id: str, title_of: str) -> list[tuple[int, str, str]]:
    """Hover, then click, the centre pixel of every front marker; (trial, hover text, detail title) each.

    Positions are read again before each click: if the page moved, the click still aims at the marker."""
    seen = []
    for index in range(len(driver.execute_script(MARKERS_JS, plot, "Pareto set"))):
        driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'});", plot)
        x, y, number = driver.execute_script(MARKERS_JS, plot, "Pareto set")[index]
        move_to(driver, x, y, click=False)
        hover = str(driver.execute_script(HOVER_JS, plot))
        before = text_of(driver, title_id)
        move_to(driver, x, y, click=True)
        with contextlib.suppress(AssertionError):  # the same trial again, or nothing: wrong_picks names it
            wait_for(lambda b=before: text_of(driver, title_id) not in ("", b), timeout=4, what="a new detail")
        seen.append((int(number), hover, text_of(driver, title_id)))
    return seen


def wrong_picks(seen: list[tuple[int, str, str]], title_of: str) -> list[str]:
    wrong = []
    for number, hover, title in seen:
        hovered = re.search(r"trial (\d+)", hover)
        if hovered is None or int(hovered.group(1)) != number:
            wrong.append(f"hover on trial {number} shows {hover[:40]!r}")
        if title_of.format(n=number) not in title:
            wrong.append(f"click on trial {number} opens {title[:40]!r}")
    return wrong


# ---------------------------------------------------------------- 1: a click opens the trial under the cursor


def test_dashboard_click_and_hover_pick_the_front_marker_under_the_cursor(browser: Any, storage_url: str) -> None:
    records = dense_study(storage_url)
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=dense")
        wait_for(
            lambda: browser.execute_script(
                "var g = document.querySelector('#pareto .js-plotly-plot'); return g && g.data && g.data.length"
            )
        )
        seen = click_every_front_member(browser, "#pareto .js-plotly-plot", "detail-title", "Trial {n} of dense")
        assert len(seen) == len(pareto_records(records))
        screenshot(browser, "found-dense-front")
        assert wrong_picks(seen, "Trial {n} of dense") == []
        assert console_errors(browser) == []


def test_report_click_and_hover_pick_the_front_marker_under_the_cursor(browser: Any, tmp_path: Path) -> None:
    records = numbered_records(dense_front_trials())
    page = tmp_path / "dense.html"
    page.write_text(report_html("dense", records, storage="sqlite:////data/nas.db"))
    browser.get(page.as_uri())
    wait_for(
        lambda: browser.execute_script("var g = document.getElementById('pareto'); return g && g.data && g.data.length")
    )
    seen = click_every_front_member(browser, "#pareto", "detail-title", "Trial {n}:")
    assert len(seen) == len(pareto_records(records))
    assert wrong_picks(seen, "Trial {n}:") == []
    assert console_errors(browser) == []


# ---------------------------------------------------------------- 2: REUSED and INFEASIBLE trials are listed


def with_reused_and_infeasible(storage_url: str) -> list[Any]:
    study = create_study(open_storage(storage_url, create=True), "states")
    trials = synthetic_trials(40, seed=21)
    done = next(t for t in trials if t.state.name == "COMPLETE")
    for _ in range(3):  # duplicates told with their twin's values, as the searcher does
        trials.append(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE,
                values=done.values,
                params=done.params,
                distributions=done.distributions,
                user_attrs={**done.user_attrs, "reused_from": 0},
            )
        )
    trials.append(  # refused untrained, told with placeholder values, as the searcher does
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            values=[0.0, 0.4],
            params=done.params,
            distributions=done.distributions,
            user_attrs={**done.user_attrs, "infeasible": True, "error": "needs 9000 MB > max_memory_mb 4096"},
        )
    )
    study.add_trials(trials)
    records = trial_records(study)
    assert {"REUSED", "INFEASIBLE"} <= {r.state for r in records}
    return records


def test_report_lists_every_trial_with_reused_and_infeasible_ones(
    browser: Any, storage_url: str, tmp_path: Path
) -> None:
    records = with_reused_and_infeasible(storage_url)
    page = tmp_path / "states.html"
    page.write_text(report_html("states", records, storage=storage_url))
    browser.get(page.as_uri())
    wait_for(
        lambda: browser.execute_script("return document.querySelectorAll('#all-trials tbody tr').length"),
        what="the trials table",
    )
    states = browser.execute_script(
        "return Array.from(document.querySelectorAll('#all-trials tbody tr td:nth-child(2)')).map(e => e.textContent);"
    )
    total = int(browser.execute_script("return Number(document.getElementById('all-trials').dataset.rows);"))
    assert total == len(records)
    assert {"REUSED", "INFEASIBLE"} <= set(states)
    infeasible = next(r for r in records if r.state == "INFEASIBLE")
    assert infeasible.error.splitlines()[0] in text_of(browser, "all-trials")
    assert console_errors(browser) == []


def test_dashboard_trials_tab_filters_reused_and_infeasible(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    records = with_reused_and_infeasible(storage_url)
    with served(browser, storage_url) as url:
        browser.get(url + "?study=states")
        wait_for(lambda: text_of(browser, "study-table"), what="the study list")
        browser.find_element(By.ID, "tab-trials").click()
        for box in browser.find_elements(By.CSS_SELECTOR, "#table-states input"):
            if box.is_selected() != (box.get_attribute("value") in ("REUSED", "INFEASIBLE")):
                box.click()
        wait_for(lambda: "INFEASIBLE" in text_of(browser, "trials-table"), what="infeasible rows")
        text = text_of(browser, "trials-table")
        infeasible = next(r for r in records if r.state == "INFEASIBLE")
        assert "REUSED" in text and infeasible.error.splitlines()[0][:40] in text
        assert console_errors(browser) == []


# ---------------------------------------------------------------- 3: a refresh keeps the zoom and the selection


def test_a_refresh_with_a_new_trial_keeps_the_zoom_and_the_opened_trial(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    dense_study(storage_url, "live")
    study = optuna.load_study(study_name="live", storage=storage_url)
    plot = "#pareto .js-plotly-plot"
    with served(browser, storage_url, refresh_s=0.5) as url:
        browser.get(url + "?study=live")
        wait_for(
            lambda: browser.execute_script(
                f"var g = document.querySelector('{plot}'); return g && g.data && g.data.length"
            )
        )
        x, y, _ = browser.execute_script(MARKERS_JS, plot, "Pareto set")[5]
        move_to(browser, x, y, click=True)
        # whichever trial the click opened (which one is the first test's business) must stay open
        opened = wait_for(lambda: text_of(browser, "detail-title"), what="the opened trial")
        x0, y0, _ = browser.execute_script(MARKERS_JS, plot, "Pareto set")[2]
        x1, y1, _ = browser.execute_script(MARKERS_JS, plot, "Pareto set")[12]
        ActionChains(browser).move_by_offset(0, 0).perform()
        move_to(browser, x0 - 10, y0 + 10, click=False)
        ActionChains(browser).click_and_hold().move_by_offset(int(x1 - x0 + 20), int(y1 - y0 - 20)).release().perform()
        zoomed = browser.execute_script(
            f"var g = document.querySelector('{plot}'); return [g.layout.xaxis.range, g.layout.yaxis.range];"
        )
        assert zoomed[0] is not None and zoomed[0][1] - zoomed[0][0] < 0.2, zoomed
        browser.execute_script(f"window.nasData = document.querySelector('{plot}').data;")
        study.add_trials(dense_front_trials()[40:41])  # one more dominated trial: the figure changes
        wait_for(
            lambda: browser.execute_script(f"return document.querySelector('{plot}').data !== window.nasData;"),
            what="the refresh",
        )
        after = browser.execute_script(
            f"var g = document.querySelector('{plot}'); return [g._fullLayout.xaxis.range, g._fullLayout.yaxis.range];"
        )
        assert [*after[0], *after[1]] == pytest.approx([*zoomed[0], *zoomed[1]], rel=1e-6), "the zoom was reset"
        assert text_of(browser, "detail-title") == opened
        assert console_errors(browser) == []


def test_a_zoom_followed_at_once_by_another_layout_event_is_kept_by_the_next_refresh(
    browser: Any, storage_url: str
) -> None:
    """A click on the modebar's zoom-in and, 10 ms later, the layout event the page sends as it
    settles (``autosize``, seen in bench/dashboard.py right after the front is drawn): the zoom
    must survive both and the next refresh."""
    dense_study(storage_url, "settling")
    study = optuna.load_study(study_name="settling", storage=storage_url)
    plot = "#pareto .js-plotly-plot"
    ranges = f"var g = document.querySelector('{plot}'); return [g._fullLayout.xaxis.range, g._fullLayout.yaxis.range];"
    with served(browser, storage_url, refresh_s=0.5) as url:
        browser.get(url + "?study=settling")
        wait_for(lambda: browser.execute_script(f"var g = document.querySelector('{plot}'); return g && g.data"))
        before = browser.execute_script(ranges)
        browser.execute_script(
            f"var g = document.querySelector('{plot}');"
            "g.querySelector('.modebar-btn[data-title=\"Zoom in\"]').click();"
            # 10 ms on: a separate event, before a round trip to the server could end
            "setTimeout(() => Plotly.relayout(g, {autosize: true}), 10);"
        )
        zoomed = wait_for(lambda: (r := browser.execute_script(ranges)) != before and r, what="the zoom")
        browser.execute_script(f"window.nasData = document.querySelector('{plot}').data;")
        study.add_trials(dense_front_trials()[40:41])
        wait_for(
            lambda: browser.execute_script(f"return document.querySelector('{plot}').data !== window.nasData;"),
            what="the refresh",
        )
        after = browser.execute_script(ranges)
        assert [*after[0], *after[1]] == pytest.approx([*zoomed[0], *zoomed[1]], rel=1e-6), "the zoom was reset"
        assert console_errors(browser) == []


# ---------------------------------------------------------------- 4: the legend says what the markers are


LEGEND_JS = """
var gd = document.querySelector(arguments[0]);
if (!gd) return null;
return Array.from(gd.querySelectorAll('g.legend g.traces')).map(function(e) {
  var p = e.querySelector('path.scatterpts');
  return [e.querySelector('text.legendtext').textContent, p ? p.style.fill : '', p ? (p.getAttribute('d') || '') : ''];
});
"""


def unfinished_trials(count: int = 12, seed: int = 5) -> list[optuna.trial.FrozenTrial]:
    """PRUNED and FAIL trials (no objective values) of every attention type but ``se``: shown, they are
    drawn as ×, and their type's legend swatch must stay its circle."""
    templates = [t.user_attrs for t in synthetic_trials(400, seed=seed) if t.state.name == "COMPLETE"]
    templates = [a for a in templates if a["spec"]["attention"]["block"] != "se"]
    by_block = {a["spec"]["attention"]["block"]: a for a in templates}
    trials = []
    for i in range(count):
        attrs = dict(list(by_block.values())[i % len(by_block)])
        attrs["history"] = [{"epoch": 1, "val_dice": 0.3 + 0.01 * i}]
        state = optuna.trial.TrialState.PRUNED if i % 2 else optuna.trial.TrialState.FAIL
        trials.append(
            optuna.trial.create_trial(
                state=state, params={"arch": 0}, distributions={"arch": IntDistribution(0, 1)}, user_attrs=attrs
            )
        )
    return trials


def test_the_legend_has_a_true_swatch_for_every_attention_type(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    records = dense_study(storage_url)
    study = optuna.load_study(study_name="dense", storage=open_storage(storage_url, create=False))
    study.add_trials(unfinished_trials())
    unfinished = {r.block for r in trial_records(study) if r.state in ("PRUNED", "FAIL")}
    plot = "#pareto .js-plotly-plot"
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=dense")
        wait_for(lambda: browser.execute_script(LEGEND_JS, plot), what="the legend")
        legend = {name: (fill, path) for name, fill, path in browser.execute_script(LEGEND_JS, plot)}
        blocks = {r.block for r in records}
        assert "se" in blocks and blocks <= set(legend), legend  # se: its one trial is on the front
        colours = browser.execute_script(
            f"return document.querySelector('{plot}')._fullData.filter(t => t.name === 'Pareto set')[0].marker.color;"
        )
        front_of = {str(r.number): r.block for r in pareto_records(records)}
        numbers = browser.execute_script(
            f"return document.querySelector('{plot}').data.filter(t => t.name === 'Pareto set')[0]"
            ".customdata.map(c => String(c[1]));"
        )
        for number, colour in zip(numbers, colours, strict=True):  # a front marker has its type's swatch colour
            assert _rgb(legend[front_of[number]][0]) == _rgb(colour), (number, front_of[number])
        ring = [fill for name, (fill, _) in legend.items() if "Pareto" in name and name != "Pareto front"]
        assert ring and all(_rgb(f) not in {_rgb(legend[b][0]) for b in blocks} for f in ring)
        for state in ("PRUNED", "FAIL"):
            browser.find_element(By.CSS_SELECTOR, f"#show-states input[value='{state}']").click()
        crosses_js = (
            f"return document.querySelector('{plot}')._fullData"
            ".filter(t => t.marker && t.marker.symbol === 'x-thin-open' && t.x && t.x[0] != null).map(t => t.name);"
        )
        assert len(unfinished) > 3  # drawn as ×, of several types, once both states are shown
        wait_for(lambda: set(browser.execute_script(crosses_js)) == unfinished, what=f"× markers of {unfinished}")
        wait_for(
            lambda: any("not complete" in n for n, _, _ in browser.execute_script(LEGEND_JS, plot)),
            what="the legend entry of trials without objective values",
        )
        shown = {name: (fill, path) for name, fill, path in browser.execute_script(LEGEND_JS, plot)}
        for block in blocks:  # still its circle, in its colour, whether or not it has × markers
            assert "A" in shown[block][1], f"the swatch of {block} is no longer a circle: {shown[block][1][:40]}"
            assert _rgb(shown[block][0]) == _rgb(legend[block][0]), block
        assert console_errors(browser) == []


def _rgb(colour: str) -> tuple[int, ...]:
    colour = colour.strip()
    if colour.startswith("#"):
        return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(v)) for v in re.findall(r"[\d.]+", colour)[:3])


# ---------------------------------------------------------------- 5: a click does not move the page


RECT_JS = (
    "var r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.top + window.scrollY, r.height];"
)


def rects(driver: Any, *selectors: str) -> list[float]:
    """Top (in the page) and height of each element, flattened."""
    return [v for s in selectors for v in driver.execute_script(RECT_JS, s)]


def test_dashboard_click_keeps_the_layout_and_the_export_command_beside_the_plot(
    browser: Any, storage_url: str
) -> None:
    dense_study(storage_url)
    plot = "#pareto .js-plotly-plot"
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=dense")
        wait_for(
            lambda: browser.execute_script(
                f"var g = document.querySelector('{plot}'); return g && g.data && g.data.length"
            )
        )
        browser.execute_script("window.scrollTo(0, 0);")
        before = rects(browser, "#pareto", "#hypervolume")
        x, y, _ = browser.execute_script(MARKERS_JS, plot, "Pareto set")[-1]
        move_to(browser, x, y, click=True)
        wait_for(lambda: text_of(browser, "detail-title"), what="the detail")
        wait_for(
            lambda: browser.execute_script("return document.querySelector('#learning-curve .js-plotly-plot') !== null")
        )
        browser.execute_script("window.scrollTo(0, 0);")
        after = rects(browser, "#pareto", "#hypervolume")
        assert after == pytest.approx(before, abs=1), "the plot or what follows it moved"
        graph_top, graph_height = after[:2]
        command_top, command_height = browser.execute_script(RECT_JS, "#export-command")
        assert graph_top <= command_top and command_top + command_height <= graph_top + graph_height + 1
        assert console_errors(browser) == []


def test_report_click_keeps_the_layout(browser: Any, tmp_path: Path) -> None:
    records = numbered_records(dense_front_trials())
    page = tmp_path / "layout.html"
    page.write_text(report_html("dense", records, storage="sqlite:////data/nas.db"))
    browser.get(page.as_uri())
    wait_for(
        lambda: browser.execute_script("var g = document.getElementById('pareto'); return g && g.data && g.data.length")
    )
    browser.execute_script("window.scrollTo(0, 0);")
    before = rects(browser, "#pareto", "#hypervolume")
    x, y, _ = browser.execute_script(MARKERS_JS, "#pareto", "Pareto set")[-1]
    move_to(browser, x, y, click=True)
    wait_for(lambda: text_of(browser, "detail-title"), what="the detail")
    browser.execute_script("window.scrollTo(0, 0);")
    after = rects(browser, "#pareto", "#hypervolume")
    assert after == pytest.approx(before, abs=1), "the plot or what follows it moved"
    assert console_errors(browser) == []


# ---------------------------------------------------------------- 6: what the first visit downloads


def test_first_visit_downloads_compressed_javascript(browser: Any, storage_url: str) -> None:
    dense_study(storage_url)
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=dense")
        wait_for(
            lambda: browser.execute_script(
                "var g = document.querySelector('#pareto .js-plotly-plot'); return g && g.data && g.data.length"
            )
        )
        entries = browser.execute_script(
            "return performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))"
            ".map(e => [e.name, e.transferSize, e.decodedBodySize]);"
        )
        sent = sum(int(t) for _, t, _ in entries)
        scripts = [(n, t, d) for n, t, d in entries if ".js" in n]
        # 2.04 MB with the full plotly.js (1.4 MB of it), 1.1 MB with our partial bundle (0.5 MB)
        assert scripts and sent < 1_500_000, sorted(entries, key=lambda e: -e[1])[:5]
        plotly = [e for e in scripts if "plotly" in e[0].lower() and e[2] > 1_000_000]
        assert [n.rsplit("/", 1)[-1].split("-")[2] for n, _, _ in plotly] == ["nas"], plotly  # only the partial
        assert all(t < d / 2 for _, t, d in plotly), plotly  # compressed on the wire
        assert console_errors(browser) == []


def test_a_big_reports_table_pages_its_trials_rather_than_inlining_every_row(browser: Any, tmp_path: Path) -> None:
    """The 5,000-trial report inlined a 4,850-row table (10 MB, 19 s to open): the rows now travel in
    the gzipped data and the table holds one page of them at a time, every trial reachable by paging."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    records = numbered_records(synthetic_trials(600, seed=4))
    page = tmp_path / "big.html"
    html_text = report_html("big", records, storage="sqlite:////data/nas.db")
    assert not re.search(r'<tr data-trial="\d', html_text), "trial rows are inlined in the HTML"
    page.write_text(html_text)
    browser.get(page.as_uri())
    rows_js = "return Array.from(document.querySelectorAll('#all-trials tbody tr')).map(r => Number(r.dataset.trial));"
    first = wait_for(lambda: browser.execute_script(rows_js), what="the trials table")
    assert int(browser.execute_script("return document.getElementById('all-trials').dataset.rows")) == len(records)
    seen = list(first)
    assert len(first) == 50 and text_of(browser, "table-page") == f"rows 1–50 of {len(records)}"
    for _ in range(len(records) // 50 - 1):
        browser.find_element(By.ID, "next-page").click()
        seen += browser.execute_script(rows_js)
    assert sorted(seen) == [r.number for r in records]  # every trial once, 50 rows at a time
    Select(browser.find_element(By.ID, "state-filter")).select_by_value("FAIL")
    failed = [r.number for r in records if r.state == "FAIL"]
    assert browser.execute_script(rows_js) == failed[:50] and len(failed) > 10
    assert console_errors(browser) == []


#: A dashboard server in its own process, as ``nas dashboard`` runs it; told on stdin, it says which
#: heavy packages it has imported by then.
SERVE_THEN_SAY_IMPORTS = """
import sys
from dashboards import DashboardServer, create_app
from studies import StudyReader, open_storage
reader = StudyReader(open_storage(sys.argv[1], create=False))
server = DashboardServer(create_app(reader, storage_label=sys.argv[1], refresh_s=0.5), port=0).start()
print(server.url, flush=True)
sys.stdin.readline()
print(sorted(m for m in ("torch", "monai", "ray") if m in sys.modules), flush=True)
server.stop()
"""


def test_the_server_shows_a_trial_and_its_architecture_without_importing_torch(browser: Any, storage_url: str) -> None:
    """The server took ~690 MB because it imported torch and Ray; it reads a study and draws its
    trials' architecture diagrams, gates included, with neither (bench/dashboard.py: ~350 MB less)."""
    import base64
    import select
    import subprocess
    import sys

    from tests._studyfactory import make_rich_study
    from tests.conftest import REPO

    records = trial_records(make_rich_study(open_storage(storage_url, create=True), "light", 80, seed=9))
    blocks = {r.number: r.spec["attention"] for r in records if r.state == "COMPLETE"}
    gated = next(n for n, a in blocks.items() if a["block"] == "ag")
    composed = next(n for n, a in blocks.items() if a["block"] == "compose")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE_THEN_SAY_IMPORTS, storage_url],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def said() -> str:
        assert server.stdout is not None
        assert select.select([server.stdout], [], [], 60)[0], "the server said nothing within 60 s"
        return server.stdout.readline().strip()

    try:
        url = said()
        assert url.startswith("http"), url
        for number in (gated, composed):
            browser.get(url + f"?study=light&trial={number}")
            wait_for(lambda n=number: f"Trial {n} of light" in text_of(browser, "detail-title"), what=f"trial {number}")
            src = wait_for(
                lambda: browser.execute_script(
                    "var i = document.getElementById('arch-diagram');"
                    "return i && i.complete && i.naturalWidth > 0 && i.src;"
                ),
                what="the architecture diagram",
            )
            svg = base64.b64decode(src.split(",", 1)[1]).decode()
            options = blocks[number].get("options", {})
            takes_gate = blocks[number]["block"] == "ag" or {options.get("a"), options.get("b")} & {"ag", "gff"}
            assert ('class="edge-gate"' in svg) == bool(takes_gate), (number, blocks[number])
        browser.execute_script("return new Promise(r => setTimeout(r, 1500));")  # a few refresh ticks
        assert server.stdin is not None
        server.stdin.write("say\n")
        server.stdin.flush()
        assert said() == "[]"
    finally:
        browser.get("about:blank")
        server.kill()
        server.wait(timeout=30)
    assert console_errors(browser) == []


def test_the_first_view_comes_with_the_page_for_the_study_in_the_address(storage_url: str) -> None:
    """The layout carries the address's front (Dash asks for it from the page, so the page's address
    is its Referer): the front is drawn when plotly.js is ready, not after three callback round trips,
    and a link to an older study never flashes the newest one first."""
    import json
    import urllib.request

    records = dense_study(storage_url)
    create_study(open_storage(storage_url, create=False), "newest")
    with served(None, storage_url) as url:

        def layout(referrer: str | None) -> dict[str, Any]:
            request = urllib.request.Request(url + "_dash-layout", headers={"Referer": referrer} if referrer else {})
            with urllib.request.urlopen(request, timeout=60) as response:
                return dict(json.loads(response.read()))

        def component(tree: Any, wanted: str) -> Any:
            if isinstance(tree, dict):
                if tree.get("props", {}).get("id") == wanted:
                    return tree["props"]
                return next((c for v in tree.values() if (c := component(v, wanted)) is not None), None)
            if isinstance(tree, list):
                return next((c for v in tree if (c := component(v, wanted)) is not None), None)
            return None

        linked = layout(url + "?study=dense&trial=3")
        front = {t.get("name"): len(t["x"]) for t in component(linked, "pareto")["figure"]["data"] if "x" in t}
        assert front.get("Pareto set") == len(pareto_records(records)), front
        assert component(linked, "selection")["data"] == ["dense"]
        assert component(linked, "studies")["value"] == ["dense"]
        plain = layout(None)  # no address: the newest study, which has no trials yet
        assert component(plain, "selection")["data"] == ["newest"]
        assert "no trials" in str(component(plain, "empty-message")["children"]).lower()


def test_a_reload_revalidates_the_bundles_and_keeps_the_browsers_own_string_functions(
    browser: Any, storage_url: str
) -> None:
    """Dash's bundled @babel/polyfill replaces String.prototype.trim, parseFloat and others with slow
    JavaScript versions (a third of plotly's drawing time on a 5,000-trial front): the page keeps the
    browser's own. A reload finds plotly.js in the browser's cache (our partial bundle, whose address
    changes with its bytes) or gets a 304 (Dash's plotly.min.js), not its 0.5-1.4 MB again."""
    dense_study(storage_url)
    drawn = "var g = document.querySelector('#pareto .js-plotly-plot'); return !!(g && g.data && g.data.length)"
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=dense")
        wait_for(lambda: browser.execute_script(drawn), what="the front")
        natives = browser.execute_script(
            "var f = [String.prototype.trim, String.prototype.trimStart, String.prototype.trimEnd,"
            " Number.parseFloat, Number.parseInt, window.parseFloat, window.parseInt, Math.sinh];"
            # core-js dresses its replacements' toString up as native: ask a fresh frame's toString
            "var frame = document.createElement('iframe'); document.body.appendChild(frame);"
            "var show = frame.contentWindow.Function.prototype.toString;"
            "var out = f.map(x => show.call(x).includes('[native code]')); frame.remove(); return out;"
        )
        assert natives == [True] * 8, natives
        fetched = "return performance.getEntriesByType('resource').filter(e => /plotly[^/]*\\.min\\.js/.test(e.name))"
        fetched += ".map(e => e.transferSize);"
        first = browser.execute_script(fetched)
        browser.refresh()
        wait_for(lambda: browser.execute_script(drawn), what="the front after a reload")
        again = browser.execute_script(fetched)
        assert first and first[0] > 300_000 and again and again[0] < 10_000, (first, again)
        assert console_errors(browser) == []


# ---------------------------------------------------------------- 7: the smaller defects


def test_smaller_defects_colours_labels_controls(browser: Any, storage_url: str) -> None:
    from selenium.webdriver.common.by import By

    records = dense_study(storage_url)
    plot = "#pareto .js-plotly-plot"
    with served(browser, storage_url, refresh_s=60) as url:
        browser.get(url + "?study=dense")
        wait_for(lambda: browser.execute_script(LEGEND_JS, plot), what="the legend")
        front_colour = {name: fill for name, fill, _ in browser.execute_script(LEGEND_JS, plot)}
        x, y, _ = browser.execute_script(MARKERS_JS, plot, "Pareto set")[3]
        move_to(browser, x, y, click=True)
        wait_for(lambda: browser.execute_script("return document.querySelector('#learning-curve .js-plotly-plot')"))
        curves = browser.execute_script(
            "return document.querySelector('#learning-curve .js-plotly-plot').data.map(t => t.name);"
        )
        assert curves == ["validation Dice", "training loss"]  # not the raw keys val_dice, loss
        boxes = browser.execute_script(BOXES_JS, "#learning-curve .js-plotly-plot")
        legend = boxes["g.legend"]
        assert legend and boxes["g.g-xtitle"] and boxes["g.g-ytitle"] and boxes["g.g-y2title"], boxes
        for title in ("g.g-xtitle", "g.g-ytitle", "g.g-y2title"):  # the legend covers no axis title
            assert not _overlap(legend, boxes[title]), (title, legend, boxes[title])
        assert _inside(legend, boxes["svg.main-svg"]), (legend, boxes["svg.main-svg"])
        assert browser.find_element(By.ID, "front-controls").is_displayed()
        for tab in ("parallel", "history", "importance", "trials", "ablation"):
            browser.find_element(By.ID, f"tab-{tab}").click()  # the Pareto tab's controls do nothing here
            wait_for(lambda: not browser.find_element(By.ID, "front-controls").is_displayed(), what=f"{tab}")
        browser.find_element(By.ID, "tab-front").click()
        wait_for(lambda: browser.find_element(By.ID, "front-controls").is_displayed(), what="the front's controls")
        browser.find_element(By.ID, "tab-ablation").click()
        ablation = "#ablation .js-plotly-plot"
        wait_for(lambda: browser.execute_script(f"var g = document.querySelector('{ablation}'); return g && g.data"))
        boxes = browser.execute_script(
            f"var g = document.querySelector('{ablation}');"
            "return g._fullData.filter(t => t.xaxis === 'x').map(t => [t.name, t.marker.color]);"
        )
        blocks = {r.block for r in records}
        for name, colour in boxes:  # the same colour for an attention type as on the front; its n shown
            block = name.split(" (n=")[0]
            assert block in blocks and " (n=" in name
            assert _rgb(colour) == _rgb(front_colour[block]), (block, colour, front_colour[block])
        title = browser.execute_script(f"return document.querySelector('{ablation}')._fullLayout.yaxis.title.text;")
        assert title == "validation Dice"
        browser.find_element(By.ID, "tab-parallel").click()
        parallel = "#parallel .js-plotly-plot"
        wait_for(lambda: browser.execute_script(f"var g = document.querySelector('{parallel}'); return g && g.data"))
        levels = browser.execute_script(
            f"return document.querySelector('{parallel}')._fullData[0].dimensions"
            ".filter(d => d.label === 'levels')[0].tickvals;"
        )
        assert levels and all(float(v).is_integer() for v in levels)
        names = browser.execute_script(LABELS_JS, parallel)  # every axis's tick labels and title
        frame = browser.execute_script(BOXES_JS, parallel)["svg.main-svg"]
        assert len(names) > 10 and any(re.search("[a-z]", text) for text, _ in names), names
        clipped = [text for text, box in names if not _inside(box, frame)]
        assert clipped == [], f"cut off at the figure's edge: {clipped}"
        assert console_errors(browser) == []


#: Bounding boxes [left, top, right, bottom] of a figure's parts (None where there is none).
BOXES_JS = """
var g = document.querySelector(arguments[0]), out = {};
['g.legend', 'g.g-xtitle', 'g.g-ytitle', 'g.g-y2title', 'svg.main-svg'].forEach(function(s) {
  var e = g.querySelector(s), b = e && e.getBoundingClientRect();
  out[s] = b && b.width > 0 ? [b.left, b.top, b.right, b.bottom] : null;
});
return out;
"""
#: Every non-empty text of a parallel-coordinates figure with its bounding box.
LABELS_JS = """
return Array.from(document.querySelector(arguments[0]).querySelectorAll('.parcoords text'))
  .map(e => [e.textContent, e.getBoundingClientRect()])
  .filter(t => t[0].trim() && t[1].width > 0).map(t => [t[0], [t[1].left, t[1].top, t[1].right, t[1].bottom]]);
"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(a: list[float], frame: list[float]) -> bool:
    return a[0] >= frame[0] - 0.5 and a[2] <= frame[2] + 0.5 and a[1] >= frame[1] - 0.5 and a[3] <= frame[3] + 0.5


def test_the_reports_export_command_names_the_storage_by_its_absolute_path_and_copies(
    browser: Any, tmp_path: Path
) -> None:
    """``nas report`` run in the study's folder with a relative ``sqlite:///nas.db``: the command a
    click shows (and its copy button puts on the clipboard) names the database by its absolute path,
    so it works from any folder."""
    from selenium.webdriver.common.by import By

    make_study(open_storage(f"sqlite:///{tmp_path / 'nas.db'}", create=True), "rel")
    done = nas_process("report", "rel", "--storage", "sqlite:///nas.db", "-o", "r.html", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    browser.get((tmp_path / "r.html").as_uri())
    wait_for(
        lambda: browser.execute_script("var g = document.getElementById('pareto'); return g && g.data && g.data.length")
    )
    x, y, number = browser.execute_script(MARKERS_JS, "#pareto", "Pareto set")[0]
    move_to(browser, x, y, click=True)
    command = wait_for(lambda: text_of(browser, "export-command"), what="the export command")
    assert command.startswith(f"nas export rel --trial {number} --storage sqlite:///{tmp_path / 'nas.db'} "), command
    with clipboard_allowed(browser):
        browser.find_element(By.ID, "copy-export").click()
        wait_for(lambda: clipboard_text(browser) == command, what=f"{command!r} on the clipboard")
    assert console_errors(browser) == []
