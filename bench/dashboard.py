"""Dashboard benchmarks: how fast a 5,000-trial study loads, against Optuna's own path in the same run.

Measures, on a synthetic study written through Optuna into SQLite:

- server side, cold (a new storage connection and an empty cache, as after ``nas dashboard``
  starts): read every trial, build the Pareto and hypervolume figures and serialise them as Dash
  does, against ``optuna.load_study`` + ``study.get_trials()`` + ``optuna.visualization.plot_pareto_front``;
- the same with a warm cache (what every refresh and every further viewer costs);
- in headless Chromium (when installed): from navigation until the Pareto trace is drawn with the
  whole front, on the first visit after the server started and on a reload;
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
)
from studies import StudyReader, open_storage, pareto_mask, pareto_records  # noqa: E402
from tests._studyfactory import make_rich_study  # noqa: E402

STUDY = "bench"
GOAL_BROWSER_S = 2.0  # navigation until the whole front is drawn


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


def browser_rows(url: str, front_size: int, repeats: int) -> list[dict[str, Any]] | str:
    sys.path.insert(0, str(HERE.parent))
    from tests._browser import browser_available, chrome

    if not browser_available():
        return "skipped: Chromium and ChromeDriver are not installed (scripts/ensure-chromium.sh)"
    script = (
        "var g = document.querySelector('#pareto .js-plotly-plot');"
        "if (!g || !g.data) return 0;"
        f"var t = g.data.filter(t => t.name === '{FRONT_TRACE}')[0]; return t ? t.x.length : 0;"
    )
    first: list[float] = []
    reload: list[float] = []
    session = chrome()
    driver: Any = next(session)
    try:
        for _ in range(repeats):
            reader = StudyReader(open_storage(url, create=False))
            server = DashboardServer(create_app(reader, storage_label=url, refresh_s=60, study=STUDY), port=0)
            server.start()
            try:
                for times in (first, reload):
                    started = time.perf_counter()
                    driver.get(server.url)
                    while driver.execute_script(script) != front_size:
                        if time.perf_counter() - started > 120:
                            raise TimeoutError("the Pareto trace did not appear within 120 s")
                        time.sleep(0.02)
                    times.append(time.perf_counter() - started)
                driver.get("about:blank")
            finally:
                server.stop()
    finally:
        session.close()
    return [
        {"view": "first visit after the server started (JS bundles from the server)", "seconds": min(first)},
        {"view": "reload (browser cache warm)", "seconds": min(reload)},
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


def render(
    trials: int,
    build_s: float,
    server: dict[str, float],
    browser: list[dict[str, Any]] | str,
    pareto: list[dict[str, Any]],
    front: int,
) -> str:
    lines = [
        f"Study: {trials} synthetic trials in SQLite (80% COMPLETE, 10% PRUNED, 10% FAIL), {front} on the Pareto "
        f"front; written through Optuna in {build_s:.1f} s.",
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
        "### In headless Chromium: navigation until the Pareto trace holds the whole front (best of repeats)",
        "",
    ]
    if isinstance(browser, str):
        lines.append(browser)
    else:
        lines += ["| view | time (s) | goal ≤ 2 s |", "|---|---|---|"]
        lines += [
            f"| {r['view']} | {r['seconds']:.2f} | {'met' if r['seconds'] <= GOAL_BROWSER_S else 'not met'} |"
            for r in browser
        ]
        lines += [
            "",
            "Headless Chromium renders with software GL on this machine; below 10,000 points the scatter is "
            "drawn as SVG, which was the faster of the two here.",
        ]
    lines += [
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


def headlines(trials: int, server: dict[str, float], browser: list[dict[str, Any]] | str) -> list[_report.Headline]:
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
    if not isinstance(browser, str):
        for r in browser:
            rows.append(
                _report.Headline(
                    area="Dashboard",
                    what=f"headless Chromium, {trials:,} trials: {r['view']}",
                    figure=f"{r['seconds']:.2f} s",
                    goal=f"≤ {GOAL_BROWSER_S:g} s",
                    met=r["seconds"] <= GOAL_BROWSER_S,
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
        front = len(pareto_records(StudyReader(study._storage).records(STUDY)))
        warm_reader = StudyReader(open_storage(url, create=False))
        our_page(url, warm_reader)()
        server = {
            "optuna": best_of(optuna_page(url), repeats),
            "cold": best_of(our_page(url), repeats),
            "warm": best_of(our_page(url, warm_reader), repeats),
        }
        browser = browser_rows(url, front, repeats)
    pareto = pareto_rows((5_000,), repeats)
    return _report.Section(
        title="Dashboard",
        body=render(trials, build_s, server, browser, pareto, front),
        headlines=headlines(trials, server, browser),
        versions=(f"optuna {optuna.__version__}", f"plotly {plotly.__version__}"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return _report.standalone(measure, "dashboard.py", argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
