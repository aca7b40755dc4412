"""Dashboard benchmarks: how fast a 5,000-trial study loads, against Optuna's own path in the same run.

Measures, on a synthetic study written through Optuna into SQLite:

- server side, cold (a new storage connection and an empty cache, as after ``nas dashboard``
  starts): read every trial, build the Pareto and hypervolume figures and serialise them as Dash
  does, against ``optuna.load_study`` + ``study.get_trials()`` + ``optuna.visualization.plot_pareto_front``;
- the same with a warm cache (what every refresh and every further viewer costs);
- process start until the server's first HTTP response, for the dashboards package alone and for
  ``nas dashboard``, with whether torch and Ray are imported by then;
- the resident memory of ``nas dashboard`` (Linux ``/proc``): at its first response, after a first
  visit has drawn the front, and after a trial's page with its architecture diagram, against the same
  server with the block registry imported (torch and MONAI, as its diagrams needed before);
- in headless Chromium (when installed): from navigation until the Pareto trace is drawn with the
  whole front, on the first visit right after the server started and on one to a server already
  running (both with an empty browser cache), on a reload, with the bytes transferred; the
  parallel-coordinates tab; a trial told to the study while the page is open and zoomed, until it
  is drawn, and whether the zoom was kept; the offline report of the same study (its size, and
  opening it); and the same page views of a 50,000-trial study (the 5,000 trials copied ten times
  with SQL, each copy slightly dominated by its original);
- the 2-objective Pareto mask, sort-based against the general pairwise (chunked) form.

Part of ``bench/run.py`` (``BENCHMARKS.md``); alone: ``python bench/dashboard.py [--quick] [--output F]``.
``--quick`` is a smoke run (500 trials, one repetition).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import _report
import numpy as np
import optuna
import plotly
import plotly.io.json as pio_json

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dashboards import (  # noqa: E402
    FRONT_TRACE,
    OBJECTIVES,
    DashboardServer,
    create_app,
    front_data,
    hypervolume_curve,
    hypervolume_figure,
    pareto_figure,
    plotly_js,
    reference_point,
    report_html,
)
from studies import StudyReader, open_storage, pareto_mask, pareto_records  # noqa: E402
from tests._studyfactory import make_rich_study  # noqa: E402

STUDY = "bench"
GOAL_FIRST_S = 1.5  # first visit of a 5,000-trial study, navigation until the whole front is drawn
GOAL_RELOAD_S = 1.0
GOAL_LARGE_S = 3.0  # a 50,000-trial study, first visit
LARGE_COPIES = 10
GOAL_SERVER_S = 2.0  # process start until the first HTTP response
GOAL_REPORT_MB = 3.0
GOAL_REPORT_S = 3.0
FRONT_JS = (
    "var g = document.querySelector(arguments[0]);"
    "if (!g || !g.data) return 0;"
    f"var t = g.data.filter(t => t.name === '{FRONT_TRACE}')[0]; return t ? t.x.length : 0;"
)
#: What ``nas dashboard`` does before it listens, without the ``nas`` package (which imports Ray).
SERVER_SCRIPT = """
import sys, time
from dashboards import DashboardServer, create_app
from studies import StudyReader, open_storage
reader = StudyReader(open_storage(sys.argv[1], create=False))
server = DashboardServer(create_app(reader, storage_label=sys.argv[1], refresh_s=60, study=sys.argv[2]), port=0)
print(server.url, "torch" in sys.modules, "ray" in sys.modules, flush=True)
server.serve_forever()
"""


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def our_page(url: str, reader: StudyReader | None = None) -> Callable[[], Any]:
    """What the dashboard does to show a study: read it, build the front view, serialise it."""

    def run() -> Any:
        r = reader or StudyReader(open_storage(url, create=False))
        records = {STUDY: r.records(STUDY)}
        x, y = OBJECTIVES["gflops"], OBJECTIVES["dice"]
        reference = reference_point(records, x, y)
        figures = [
            pareto_figure(front_data(records)),
            hypervolume_figure([hypervolume_curve(STUDY, records[STUDY], x, y, reference)], reference, "area"),
        ]
        return [pio_json.to_json_plotly(f) for f in figures]

    return run


def optuna_page(url: str) -> Callable[[], Any]:
    def run() -> Any:
        study = optuna.load_study(study_name=STUDY, storage=url)
        study.get_trials(deepcopy=False)
        return pio_json.to_json_plotly(optuna.visualization.plot_pareto_front(study))

    return run


def _wait(driver: Any, script: str, selector: str, front_size: int, started: float) -> float:
    while driver.execute_script(script, selector) != front_size:
        if time.perf_counter() - started > 120:
            raise TimeoutError("the Pareto trace did not appear within 120 s")
        time.sleep(0.01)
    return time.perf_counter() - started


def cli_imports() -> str:
    """Whether ``nas dashboard`` has torch and Ray imported when it starts serving: its parser, its
    module and the app's modules loaded as the CLI loads them (the server thread needs nothing more)."""
    import subprocess

    code = (
        "import sys\nfrom nas.cli import build_parser\nbuild_parser(['dashboard']).parse_args(['dashboard'])\n"
        "import nas.cli.dashboard, dashboards\nprint(*('yes' if m in sys.modules else 'no' for m in ('torch', 'ray')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(HERE.parent))
    return " / ".join(done.stdout.split()) if done.returncode == 0 else "unknown: " + done.stderr.strip()[-80:]


@contextlib.contextmanager
def serving(command: Sequence[str]) -> Iterator[tuple[Any, str, str]]:
    """Start the server ``command`` runs and wait for its answer to ``GET /``: (its process, its
    address, the line it printed); stopped afterwards."""
    import subprocess
    import urllib.request

    proc = subprocess.Popen(
        [*command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(HERE.parent)
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        address = next(word for word in line.split() if word.startswith("http"))
        with urllib.request.urlopen(address, timeout=60) as response:
            response.read()
        yield proc, address, line.strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def server_start(url: str, command: Sequence[str]) -> tuple[float, str]:
    """Seconds from starting ``command`` until its server answers ``GET /``, and what it printed."""
    started = time.perf_counter()
    with serving(command) as (_, _, line):
        return time.perf_counter() - started, line


#: ``nas dashboard ARGS`` with the block registry (torch, MONAI) imported first, as the server's
#: architecture diagrams imported it until 2026-12-07: the memory reference.
WITH_REGISTRY = "import runpy, sys, search_spaces; sys.argv[0] = 'nas'; runpy.run_module('nas', run_name='__main__')"
DIAGRAM_JS = "var i = document.getElementById('arch-diagram'); return !!(i && i.complete && i.naturalWidth > 0);"


def _resident_mb(pid: int) -> tuple[float, float]:
    """Resident memory of process ``pid`` now and at its peak (VmRSS, VmHWM), in MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def server_memory(driver: Any, command: Sequence[str], front_size: int, trial: int) -> dict[str, float]:
    """Resident MB of the server ``command`` starts: at its first response, after a first visit drew
    the front, after trial ``trial``'s page drew its architecture diagram (and a few refreshes), and
    its peak."""
    with serving(command) as (proc, address, _):
        out = {"first response": _resident_mb(proc.pid)[0]}
        _fresh_browser_cache(driver)
        _visit(driver, address + f"?study={STUDY}", front_size)
        out["front drawn"] = _resident_mb(proc.pid)[0]
        driver.get(address + f"?study={STUDY}&trial={trial}")
        started = time.perf_counter()
        while not driver.execute_script(DIAGRAM_JS):
            if time.perf_counter() - started > 120:
                raise TimeoutError("the architecture diagram did not appear within 120 s")
            time.sleep(0.05)
        time.sleep(3.0)  # refreshes of the open page
        out["trial and diagram"], out["peak"] = _resident_mb(proc.pid)
        driver.get("about:blank")
        return out


PARALLEL_JS = (
    "var g = document.querySelector('#parallel .js-plotly-plot');"
    "return !!(g && g.data && g.data.length && g.data[0].type === 'parcoords'"
    " && g.querySelectorAll('.parcoords .axis-heading').length > 0);"
)
#: Trial numbers of every marker of the Pareto plot, and its axis ranges.
NUMBERS_JS = (
    "var g = document.querySelector('#pareto .js-plotly-plot'); if (!g || !g.data) return [[], null];"
    "var n = []; g.data.forEach(t => (t.customdata || []).forEach(c => n.push(c[1])));"
    "return [n, [g._fullLayout.xaxis.range, g._fullLayout.yaxis.range]];"
)
LIVE_REFRESH_S = 2.0


@contextlib.contextmanager
def dashboard(url: str, refresh_s: float = 60) -> Iterator[str]:
    reader = StudyReader(open_storage(url, create=False))
    server = DashboardServer(create_app(reader, storage_label=url, refresh_s=refresh_s, study=STUDY), port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _fresh_browser_cache(driver: Any) -> None:
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})


def _visit(driver: Any, address: str, front_size: int) -> float:
    started = time.perf_counter()
    driver.get(address)
    return _wait(driver, FRONT_JS, "#pareto .js-plotly-plot", front_size, started)


def _sent(driver: Any) -> int:
    return int(
        driver.execute_script(
            "return performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))"
            ".reduce((a, e) => a + e.transferSize, 0);"
        )
    )


def page_views(driver: Any, url: str, front_size: int, repeats: int, *, parallel: bool) -> dict[str, Any]:
    """Best-of-``repeats`` seconds for each way a researcher opens the dashboard of ``url``."""
    from selenium.webdriver.common.by import By

    times: dict[str, list[float]] = {"after start": [], "warm server": [], "reload": [], "parallel": []}
    sent: list[int] = []
    for _ in range(repeats):
        _fresh_browser_cache(driver)
        with dashboard(url) as address:
            times["after start"].append(_visit(driver, address, front_size))  # the server is still warming up
            sent.append(_sent(driver))
            times["reload"].append(_visit(driver, address, front_size))
            _fresh_browser_cache(driver)  # another researcher opens the link: the server is warm, their cache not
            times["warm server"].append(_visit(driver, address, front_size))
            if parallel:
                started = time.perf_counter()
                driver.find_element(By.ID, "tab-parallel").click()
                while not driver.execute_script(PARALLEL_JS):
                    if time.perf_counter() - started > 120:
                        raise TimeoutError("parallel coordinates did not appear within 120 s")
                    time.sleep(0.01)
                times["parallel"].append(time.perf_counter() - started)
            driver.get("about:blank")
    return {**{k: min(v) for k, v in times.items() if v}, "bytes": min(sent)}


def live_arrival(driver: Any, url: str, front_size: int, arrivals: int = 3) -> dict[str, Any]:
    """Trials told to the study one after another while the page is open and zoomed: seconds from
    the end of each ``study.tell`` until the page draws it (the page refreshes every
    ``LIVE_REFRESH_S`` s, so each waits for the next tick, then for the front to be rebuilt, sent and
    drawn), and whether the zoom was kept through all of them. Each new trial is a front member
    (best Dice, fewest GFLOPs so far)."""
    study = optuna.load_study(study_name=STUDY, storage=url)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    template = complete[0]
    dice = max(t.values[0] for t in complete)
    gflops = min(t.values[1] for t in complete)
    seconds: list[float] = []
    with dashboard(url, refresh_s=LIVE_REFRESH_S) as address:
        _visit(driver, address, front_size)
        driver.execute_script(
            "var g = document.querySelector('#pareto .js-plotly-plot'); var x = g._fullLayout.xaxis.range,"
            " y = g._fullLayout.yaxis.range; Plotly.relayout(g, {'xaxis.range[0]': x[0],"
            " 'xaxis.range[1]': (x[0] + x[1]) / 2, 'yaxis.range[0]': (y[0] + y[1]) / 2, 'yaxis.range[1]': y[1]});"
        )
        time.sleep(0.5)  # the zoom is recorded by the page before the first trial arrives
        zoom = driver.execute_script(NUMBERS_JS)[1]
        for k in range(arrivals):
            trial = study.ask()
            for name, value in template.user_attrs.items():
                trial.set_user_attr(name, value)
            gflops *= 0.98
            trial.set_user_attr("flops", int(gflops * 1e9))
            study.tell(trial, [min(0.999, dice + 0.001 * (k + 1)), gflops])
            told = time.perf_counter()
            while trial.number not in driver.execute_script(NUMBERS_JS)[0]:
                if time.perf_counter() - told > 60:
                    raise TimeoutError("a new trial did not reach the page within 60 s")
                time.sleep(0.02)
            seconds.append(time.perf_counter() - told)
            time.sleep(0.3 * (k + 1))  # the next one at another moment of the refresh period
        after = driver.execute_script(NUMBERS_JS)[1]
        driver.get("about:blank")
    kept = after is not None and zoom is not None and np.allclose(np.ravel(after), np.ravel(zoom), rtol=1e-9)
    return {"seconds": max(seconds), "each": seconds, "kept": bool(kept)}


def replicate(db: Path, into: Path, copies: int) -> int:
    """A study ``copies`` times the size of ``db``'s, written with SQL into a copy of the file: every
    trial again under a new number, its Dice up to 2% lower and its GFLOPs up to 2% higher (so it
    is dominated by its original and the front keeps its members). Seconds, not the minutes Optuna's
    ``add_trials`` takes for 45,000 trials. Returns the number of trials."""
    import sqlite3

    with sqlite3.connect(db) as source, sqlite3.connect(into) as copy:
        source.backup(copy)  # with what is still in the write-ahead log
    with sqlite3.connect(into) as conn:
        top = int(conn.execute("SELECT max(trial_id) FROM trials").fetchone()[0])
        n = int(conn.execute("SELECT count(*) FROM trials").fetchone()[0])
        children = {
            "trial_params": "param_name, param_value, distribution_json",
            "trial_user_attributes": "key, value_json",
            "trial_system_attributes": "key, value_json",
            "trial_intermediate_values": "step, intermediate_value, intermediate_value_type",
        }
        for k in range(1, copies):
            offset, shift = k * top, k * n
            conn.execute(
                "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
                f"SELECT trial_id + {offset}, number + {shift}, study_id, state, datetime_start, datetime_complete "
                f"FROM trials WHERE trial_id <= {top}"
            )
            conn.execute(
                "INSERT INTO trial_values (trial_id, objective, value, value_type) "
                f"SELECT trial_id + {offset}, objective, CASE objective "
                "WHEN 0 THEN value * (1 - abs(random() % 20000) / 1e6) ELSE value * (1 + abs(random() % 20000) / 1e6) "
                f"END, value_type FROM trial_values WHERE trial_id <= {top}"
            )
            for table, columns in children.items():
                conn.execute(
                    f"INSERT INTO {table} (trial_id, {columns}) "
                    f"SELECT trial_id + {offset}, {columns} FROM {table} WHERE trial_id <= {top}"
                )
    return n * copies


def browser_rows(url: str, front_size: int, repeats: int, report: Path, big: tuple[str, int, int] | None) -> Any:
    """Chromium's views of the study (and of ``big``: url, trials, front size), or why they were skipped."""
    from tests._browser import browser_available, chrome

    if not browser_available():
        return "skipped: Chromium and ChromeDriver are not installed (scripts/ensure-chromium.sh)"
    session = chrome()
    driver: Any = next(session)
    try:
        views = page_views(driver, url, front_size, repeats, parallel=True)
        opened = []
        for _ in range(repeats):
            started = time.perf_counter()
            driver.get(report.as_uri())
            opened.append(_wait(driver, FRONT_JS, "#pareto", front_size, started))
            driver.get("about:blank")
        large = None
        if big is not None:
            large = {**page_views(driver, big[0], big[2], max(1, repeats - 1), parallel=False), "trials": big[1]}
        memory: dict[str, dict[str, float]] = {}
        if Path("/proc/self/status").is_file():
            # a trial whose diagram has a gate (the front's cheapest member has no attention at all)
            trial = next(
                r.number
                for r in StudyReader(open_storage(url, create=False)).records(STUDY)
                if r.state == "COMPLETE" and r.spec and r.spec["attention"]["block"] == "ag"
            )
            args = ["dashboard", "--storage", url, "--port", "0", "--study", STUDY, "--refresh", "1"]
            memory["nas dashboard"] = server_memory(driver, [sys.executable, "-m", "nas", *args], front_size, trial)
            memory["nas dashboard with the block registry imported first (reference)"] = server_memory(
                driver, [sys.executable, "-c", WITH_REGISTRY, *args], front_size, trial
            )
        live = live_arrival(driver, url, front_size)  # last: it adds a trial to the study
    finally:
        session.close()
    rows = [
        {
            "view": "first visit, right after the server started (empty browser cache)",
            "seconds": views["after start"],
            "goal": GOAL_FIRST_S,
        },
        {
            "view": "first visit to a server already running (empty browser cache)",
            "seconds": views["warm server"],
            "goal": GOAL_FIRST_S,
        },
        {"view": "reload (browser cache warm)", "seconds": views["reload"], "goal": GOAL_RELOAD_S},
        {"view": "parallel-coordinates tab: click until drawn", "seconds": views["parallel"]},
        {
            "view": "offline report: open the file until the front is drawn",
            "seconds": min(opened),
            "goal": GOAL_REPORT_S,
        },
        {
            "view": f"{len(live['each'])} trials told while the page is open and zoomed, the slowest until drawn "
            f"(refresh every {LIVE_REFRESH_S:g} s; each: {', '.join(f'{t:.2f}' for t in live['each'])} s); "
            f"zoom {'kept' if live['kept'] else 'LOST'}",
            "seconds": live["seconds"],
            "goal": LIVE_REFRESH_S,
            "met": live["kept"] and live["seconds"] <= LIVE_REFRESH_S,
        },
    ]
    if large is not None:
        n = large["trials"]
        rows += [
            {
                "view": f"{n:,} trials: first visit, right after the server started",
                "seconds": large["after start"],
                "goal": GOAL_LARGE_S,
            },
            {
                "view": f"{n:,} trials: first visit to a server already running",
                "seconds": large["warm server"],
                "goal": GOAL_LARGE_S,
            },
            {"view": f"{n:,} trials: reload", "seconds": large["reload"]},
        ]
    for r in rows:
        r.setdefault("met", r["seconds"] <= r["goal"] if "goal" in r else None)
    rows[0]["bytes"] = views["bytes"]
    rows[0]["memory"] = memory
    return rows


def pareto_rows(sizes: Sequence[int], repeats: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        values = np.column_stack([rng.random(n), rng.random(n)])
        padded = np.column_stack([values, np.zeros(n)])  # a constant third objective forces the general form
        ours = best_of(lambda v=values: pareto_mask(v, [True, False]), repeats)
        general = best_of(lambda p=padded: pareto_mask(p, [True, False, True]), 1)  # O(n²): once is enough
        rows.append({"n": n, "sort": ours, "general": general})
    return rows


def _plotly_js_said() -> str:
    js = plotly_js()
    size = f"{len(js.source) / 1e6:.1f} MB"
    if js.partial:
        return f"our partial bundle, v{js.version} ({size}: core and the trace types the dashboard draws)"
    return f"plotly's full bundle, v{js.version} ({size}; the partial one did not match the installed plotly)"


def _met(met: bool) -> str:
    return "met" if met else "not met"


def render(
    trials: int,
    build_s: float,
    server: dict[str, float],
    starts: list[dict[str, Any]],
    browser: list[dict[str, Any]] | str,
    report_mb: float,
    pareto: list[dict[str, Any]],
    front: int,
) -> str:
    lines = [
        f"Study: {trials} synthetic trials in SQLite (80% COMPLETE, 10% PRUNED, 7% FAIL, 3% INFEASIBLE), {front} on "
        f"the Pareto front; written through Optuna in {build_s:.1f} s.",
        "",
        f"### Loading a {trials}-trial study, server side (best of repeats)",
        "",
        "| path | time (s) | × Optuna |",
        "|---|---|---|",
        f"| Optuna: load_study + get_trials + plot_pareto_front + JSON (reference) | {server['optuna']:.3f} | 1.00 |",
        f"| ours, cold: new connection, read, front + hypervolume figures, JSON | {server['cold']:.3f} | "
        f"{server['cold'] / server['optuna']:.2f} |",
        f"| ours, warm cache (a refresh, another viewer) | {server['warm']:.3f} | "
        f"{server['warm'] / server['optuna']:.2f} |",
        "",
        "### Server start: process start until the first HTTP response (best of repeats)",
        "",
        f"| command | time (s) | imports torch / Ray | goal ≤ {GOAL_SERVER_S:g} s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['what']} | {r['seconds']:.2f} | {r['imports']} | {_met(r['seconds'] <= GOAL_SERVER_S)} |" for r in starts
    ]
    lines += [
        "",
        f"### In headless Chromium, {trials} trials: navigation until the Pareto trace holds the whole front "
        "(best of repeats)",
        "",
    ]
    if isinstance(browser, str):
        lines.append(browser)
    else:
        lines += ["| view | time (s) | goal | met |", "|---|---|---|---|"]
        lines += [
            f"| {r['view']} | {r['seconds']:.2f} | "
            + (f"≤ {r['goal']:g} s | {_met(r['met'])} |" if "goal" in r else "— | — |")
            for r in browser
        ]
        memory = browser[0].get("memory") or {}
        if memory:
            lines += [
                "",
                "Resident memory of the dashboard server (MB, from `/proc`; the study above, a first visit and then "
                "the page of a trial with an attention gate and its architecture diagram, refreshing every second):",
                "",
                "| server | at its first response | front drawn | trial and diagram shown | peak |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {what} | {m['first response']:.0f} | {m['front drawn']:.0f} | {m['trial and diagram']:.0f} | "
                f"{m['peak']:.0f} |"
                for what, m in memory.items()
            ]
        sent = int(browser[0].get("bytes") or 0)
        lines += [
            "",
            f"A first visit transfers {sent / 1e6:.2f} MB (JavaScript gzipped by the server; a reload finds "
            "plotly.js in the browser's cache and revalidates the rest, a few kB). Headless Chromium renders with "
            "software GL on this machine; below 10,000 points the scatter is drawn as SVG, above as WebGL. "
            f"plotly.js is {_plotly_js_said()}.",
        ]
    lines += [
        "",
        f"Offline report of the {trials}-trial study: {report_mb:.2f} MB (goal ≤ {GOAL_REPORT_MB:g} MB: "
        f"{'met' if report_mb <= GOAL_REPORT_MB else 'not met'}); plotly.js and the data are inlined gzipped.",
        "",
        "### Two-objective Pareto mask: sort-based against the general pairwise form",
        "",
        "| points | sort-based (s) | pairwise, chunked (s) | speed-up |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['n']:,} | {r['sort']:.4f} | {r['general']:.4f} | {r['general'] / r['sort']:.0f}× |" for r in pareto
    ]
    return "\n".join(lines)


def headlines(
    trials: int,
    server: dict[str, float],
    starts: list[dict[str, Any]],
    browser: list[dict[str, Any]] | str,
    report_mb: float,
) -> list[_report.Headline]:
    rows = [
        _report.Headline(
            area="Dashboard",
            what=f"load a {trials:,}-trial study, server side, cold (read, front + hypervolume figures, JSON)",
            figure=f"{server['cold']:.3f} s",
            reference=f"Optuna load + plot_pareto_front {server['optuna']:.3f} s",
            ratio=server["cold"] / server["optuna"],
        ),
        _report.Headline(
            area="Dashboard",
            what="the same, warm cache (a refresh, another viewer)",
            figure=f"{server['warm']:.3f} s",
            reference=f"Optuna {server['optuna']:.3f} s",
            ratio=server["warm"] / server["optuna"],
        ),
    ]
    for r in starts:
        rows.append(
            _report.Headline(
                area="Dashboard",
                what=f"server start until the first response: {r['what']}",
                figure=f"{r['seconds']:.2f} s",
                goal=f"≤ {GOAL_SERVER_S:g} s",
                met=r["seconds"] <= GOAL_SERVER_S,
            )
        )
    if not isinstance(browser, str):
        memory = browser[0].get("memory") or {}
        if len(memory) == 2:
            ours, reference = memory.values()
            rows.append(
                _report.Headline(
                    area="Dashboard",
                    what=f"resident memory of nas dashboard, {trials:,} trials, after a trial's page with its diagram",
                    figure=f"{ours['trial and diagram']:.0f} MB",
                    reference=f"with the block registry imported {reference['trial and diagram']:.0f} MB",
                    ratio=ours["trial and diagram"] / reference["trial and diagram"],
                )
            )
        for r in browser:
            rows.append(
                _report.Headline(
                    area="Dashboard",
                    what=f"headless Chromium, {trials:,} trials: {r['view']}"
                    if "trials:" not in r["view"]
                    else f"headless Chromium, {r['view']}",
                    figure=f"{r['seconds']:.2f} s",
                    goal=f"≤ {r['goal']:g} s" if "goal" in r else "",
                    met=r["met"],
                )
            )
    rows.append(
        _report.Headline(
            area="Dashboard",
            what=f"offline report of {trials:,} trials: file size",
            figure=f"{report_mb:.2f} MB",
            goal=f"≤ {GOAL_REPORT_MB:g} MB",
            met=report_mb <= GOAL_REPORT_MB,
        )
    )
    return rows


def measure(quick: bool) -> _report.Section:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials, repeats = (500, 1) if quick else (5000, 3)
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        started = time.perf_counter()
        study = make_rich_study(open_storage(url, create=True), STUDY, trials, seed=0)
        build_s = time.perf_counter() - started
        records = StudyReader(study._storage).records(STUDY)
        front = len(pareto_records(records))
        warm_reader = StudyReader(open_storage(url, create=False))
        our_page(url, warm_reader)()
        server = {
            "optuna": best_of(optuna_page(url), repeats),
            "cold": best_of(our_page(url), repeats),
            "warm": best_of(our_page(url, warm_reader), repeats),
        }
        starts = []
        for what, command in (
            (
                "dashboards package alone (create_app + DashboardServer)",
                [sys.executable, "-c", SERVER_SCRIPT, url, STUDY],
            ),
            (
                "nas dashboard (the CLI)",
                [sys.executable, "-m", "nas", "dashboard", "--storage", url, "--port", "0", "--study", STUDY],
            ),
        ):
            times, line = [], ""
            for _ in range(repeats):
                seconds, line = server_start(url, command)
                times.append(seconds)
            starts.append(
                {
                    "what": what,
                    "seconds": min(times),
                    "imports": cli_imports()
                    if "nas" in command
                    else " / ".join("yes" if w == "True" else "no" for w in line.split()[-2:]),
                }
            )
        report = Path(tmp) / "report.html"
        report.write_text(report_html(STUDY, records, storage=url), encoding="utf-8")
        report_mb = report.stat().st_size / 1e6
        big = None
        if not quick:
            large = Path(tmp) / "large.db"
            started = time.perf_counter()
            big_n = replicate(Path(tmp) / "bench.db", large, LARGE_COPIES)
            big_url = f"sqlite:///{large}"
            big_front = len(pareto_records(StudyReader(open_storage(big_url, create=False)).records(STUDY)))
            big = (big_url, big_n, big_front)
            print(f"{big_n} trials ({big_front} on the front) copied with SQL in {time.perf_counter() - started:.1f} s")
        browser = browser_rows(url, front, repeats, report, big)
    pareto = pareto_rows((5_000,), repeats)
    return _report.Section(
        title="Dashboard",
        body=render(trials, build_s, server, starts, browser, report_mb, pareto, front),
        headlines=headlines(trials, server, starts, browser, report_mb),
        versions=(f"optuna {optuna.__version__}", f"plotly {plotly.__version__}"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return _report.standalone(measure, "dashboard.py", argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
