"""Dashboard benchmarks: how fast a 5,000-trial study loads, against Optuna's own path in the same run.

Measures, on a synthetic study written through Optuna into SQLite:

- server side, cold (a new storage connection and an empty cache, as after ``nas dashboard``
  starts): read every trial, build the Pareto and hypervolume figures and serialise them as Dash
  does, against ``optuna.load_study`` + ``study.get_trials()`` + ``optuna.visualization.plot_pareto_front``;
- the same with a warm cache (what every refresh and every further viewer costs);
- process start until the server's first HTTP response, for the dashboards package alone and for
  ``nas dashboard`` (which imports Ray and torch through the ``nas`` package);
- in headless Chromium (when installed): from navigation until the Pareto trace is drawn with the
  whole front, on the first visit after the server started (empty cache) and on a reload, with the
  bytes transferred; and the offline report of the same study (its size, and opening it);
- the 2-objective Pareto mask, sort-based against the general pairwise (chunked) form.

Part of ``bench/run.py`` (``BENCHMARKS.md``); alone: ``python bench/dashboard.py [--quick] [--output F]``.
``--quick`` is a smoke run (500 trials, one repetition).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    reference_point,
    report_html,
)
from studies import StudyReader, open_storage, pareto_mask, pareto_records  # noqa: E402
from tests._studyfactory import make_rich_study  # noqa: E402

STUDY = "bench"
GOAL_FIRST_S = 1.5  # first visit of a 5,000-trial study, navigation until the whole front is drawn
GOAL_RELOAD_S = 1.0
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


def server_start(url: str, command: Sequence[str]) -> tuple[float, str]:
    """Seconds from starting ``command`` until its server answers ``GET /``, and what it printed."""
    import subprocess
    import urllib.request

    started = time.perf_counter()
    proc = subprocess.Popen(
        [*command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(HERE.parent)
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        address = next(word for word in line.split() if word.startswith("http"))
        with urllib.request.urlopen(address, timeout=60) as response:
            response.read()
        return time.perf_counter() - started, line.strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def browser_rows(url: str, front_size: int, repeats: int, report: Path) -> list[dict[str, Any]] | str:
    sys.path.insert(0, str(HERE.parent))
    from tests._browser import browser_available, chrome

    if not browser_available():
        return "skipped: Chromium and ChromeDriver are not installed (scripts/ensure-chromium.sh)"
    first: list[float] = []
    reload: list[float] = []
    opened: list[float] = []
    transferred: list[int] = []
    session = chrome()
    driver: Any = next(session)
    try:
        for _ in range(repeats):
            reader = StudyReader(open_storage(url, create=False))
            server = DashboardServer(create_app(reader, storage_label=url, refresh_s=60, study=STUDY), port=0)
            server.start()
            try:
                driver.execute_cdp_cmd("Network.enable", {})
                driver.execute_cdp_cmd("Network.clearBrowserCache", {})
                for times in (first, reload):
                    started = time.perf_counter()
                    driver.get(server.url)
                    times.append(_wait(driver, FRONT_JS, "#pareto .js-plotly-plot", front_size, started))
                    if times is first:
                        transferred.append(
                            int(
                                driver.execute_script(
                                    "return performance.getEntriesByType('resource').concat("
                                    "performance.getEntriesByType('navigation'))"
                                    ".reduce((a, e) => a + e.transferSize, 0);"
                                )
                            )
                        )
                driver.get("about:blank")
            finally:
                server.stop()
            started = time.perf_counter()
            driver.get(report.as_uri())
            opened.append(_wait(driver, FRONT_JS, "#pareto", front_size, started))
            driver.get("about:blank")
    finally:
        session.close()
    return [
        {
            "view": "first visit after the server started (empty browser cache)",
            "seconds": min(first),
            "goal": GOAL_FIRST_S,
            "bytes": min(transferred),
        },
        {"view": "reload (browser cache warm)", "seconds": min(reload), "goal": GOAL_RELOAD_S},
        {
            "view": "offline report: open the file until the front is drawn",
            "seconds": min(opened),
            "goal": GOAL_REPORT_S,
        },
    ]


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
            f"| {r['view']} | {r['seconds']:.2f} | ≤ {r['goal']:g} s | {_met(r['seconds'] <= r['goal'])} |"
            for r in browser
        ]
        sent = browser[0].get("bytes")
        lines += [
            "",
            f"A first visit transfers {sent / 1e6:.2f} MB (JavaScript gzipped by the server). Headless Chromium "
            "renders with software GL on this machine; below 10,000 points the scatter is drawn as SVG.",
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
        for r in browser:
            rows.append(
                _report.Headline(
                    area="Dashboard",
                    what=f"headless Chromium, {trials:,} trials: {r['view']}",
                    figure=f"{r['seconds']:.2f} s",
                    goal=f"≤ {r['goal']:g} s",
                    met=r["seconds"] <= r["goal"],
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
                "dashboards package (what nas dashboard does, without the nas package)",
                [sys.executable, "-c", SERVER_SCRIPT, url, STUDY],
            ),
            (
                "nas dashboard (the CLI: nas/__init__ imports Ray and torch)",
                [sys.executable, "-m", "nas", "dashboard", "--storage", url, "--port", "0", "--study", STUDY],
            ),
        ):
            times, line = [], ""
            for _ in range(repeats):
                seconds, line = server_start(url, command)
                times.append(seconds)
            imports = "no / no" if line.endswith("False False") else ("yes" if "nas" in command else line[-11:])
            starts.append({"what": what, "seconds": min(times), "imports": imports})
        report = Path(tmp) / "report.html"
        report.write_text(report_html(STUDY, records, storage=url), encoding="utf-8")
        report_mb = report.stat().st_size / 1e6
        browser = browser_rows(url, front, repeats, report)
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
