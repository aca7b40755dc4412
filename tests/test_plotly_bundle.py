"""Our partial plotly.js (``dashboards/_static/plotly-nas.min.js``): it is the version the installed
plotly writes figures for, it holds every trace type the dashboard and the report draw and draws each
of them in a real browser, both pages load it instead of the full 4.8 MB, and a mismatched version
falls back to the full bundle."""

from __future__ import annotations

import base64
import gzip
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from plotly.offline import get_plotlyjs, get_plotlyjs_version

import dashboards._plotlyjs as plotlyjs
from dashboards import create_app, report_html
from studies import StudyReader, open_storage, trial_records
from tests._browser import chrome, console_errors, require_browser
from tests._studyfactory import make_rich_study

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundle_is_the_plotly_js_version_the_installed_plotly_writes_for() -> None:
    """Else the dashboard quietly falls back to the full bundle: rebuild with scripts/build-plotly-bundle.sh."""
    source = plotlyjs.BUNDLE.read_bytes()
    assert plotlyjs.bundle_version(source) == get_plotlyjs_version()
    assert plotlyjs.plotly_js().partial and len(source) < len(get_plotlyjs()) / 2


def test_the_bundle_registers_exactly_the_traces_the_code_says() -> None:
    entry = (ROOT / "scripts" / "plotly-bundle" / "entry.js").read_text()
    registered = set(re.findall(r"require\('plotly\.js/lib/(\w+)'\)", entry)) - {"core"}
    assert registered | {"scatter"} == plotlyjs.BUNDLED_TRACES  # scatter is part of core


def test_every_trace_type_the_dashboards_code_names_is_bundled() -> None:
    """Static: every ``go.<Trace>(`` in dashboards/ (a new go.Heatmap would not draw)."""
    import plotly.graph_objects as go
    from plotly.basedatatypes import BaseTraceType

    named = set()
    for path in (ROOT / "dashboards").glob("*.py"):
        for name in re.findall(r"\bgo\.([A-Z]\w+)\b", path.read_text()):
            cls = getattr(go, name)
            if isinstance(cls, type) and issubclass(cls, BaseTraceType):
                named.add(cls().type)
    assert named and named <= plotlyjs.BUNDLED_TRACES, named - plotlyjs.BUNDLED_TRACES


def _figure_types(tree: Any) -> set[str]:
    """Trace types anywhere in a JSON tree of figures (every ``data`` list of dicts with a ``type``)."""
    found: set[str] = set()
    if isinstance(tree, dict):
        data = tree.get("data")
        if isinstance(data, list) and data and all(isinstance(t, dict) for t in data) and "layout" in tree:
            found |= {str(t.get("type", "scatter")) for t in data}
        for value in tree.values():
            found |= _figure_types(value)
    elif isinstance(tree, list):
        for value in tree:
            found |= _figure_types(value)
    return found


@pytest.fixture(scope="module")
def rich_report() -> str:
    storage = optuna.storages.InMemoryStorage()
    make_rich_study(storage, "rich", 120)
    return report_html("rich", trial_records(optuna.load_study(study_name="rich", storage=storage)), storage="x")


def test_the_reports_figures_use_only_bundled_traces_and_it_inlines_the_partial_bundle(rich_report: str) -> None:
    from dashboards._report import unpack_report_data

    types = _figure_types(unpack_report_data(rich_report))
    assert {"scatter", "bar", "box", "parcoords"} <= types <= plotlyjs.BUNDLED_TRACES, types
    packed = re.search(r'id="nas-plotly">(.*?)</script>', rich_report, re.S)
    assert packed is not None
    assert gzip.decompress(base64.b64decode(packed.group(1))) == plotlyjs.BUNDLE.read_bytes()


def test_a_mismatched_bundle_falls_back_to_the_full_plotly_js(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "plotly-nas.min.js"
    stale.write_bytes(b"/*! plotly.js v0.0.1 | old */ var Plotly = {};")
    monkeypatch.setattr(plotlyjs, "BUNDLE", stale)
    plotlyjs.partial_bundle.cache_clear()
    plotlyjs.plotly_js.cache_clear()
    try:
        assert plotlyjs.partial_bundle() is None
        chosen = plotlyjs.plotly_js()
        assert not chosen.partial and chosen.source == get_plotlyjs().encode()
        storage = optuna.storages.InMemoryStorage()
        make_rich_study(storage, "s", 10)
        app = create_app(StudyReader(storage), storage_label="x")
        assert "/_nas/" not in app.index_string  # Dash's own plotly.min.js loads, as without us
    finally:
        monkeypatch.undo()
        plotlyjs.partial_bundle.cache_clear()
        plotlyjs.plotly_js.cache_clear()
    app = create_app(StudyReader(open_storage(f"sqlite:///{tmp_path / 'n.db'}", create=True)), storage_label="x")
    assert re.search(r'<script src="/_nas/plotly-[\d.]+-nas-[0-9a-f]{12}\.min\.js"></script>', app.index_string)


#: One trace of each type; each must draw (its SVG or WebGL layer exists) without an error.
_TRACES = {
    "scatter": {"type": "scatter", "mode": "markers", "x": [1, 2, 3], "y": [3, 1, 2], "error_y": {"array": [1, 1, 1]}},
    "scattergl": {"type": "scattergl", "mode": "markers", "x": [1, 2, 3], "y": [3, 1, 2]},
    "bar": {"type": "bar", "x": ["a", "b"], "y": [1, 2]},
    "box": {"type": "box", "y": [1, 2, 3, 4, 9]},
    "parcoords": {
        "type": "parcoords",
        "dimensions": [{"label": "a", "values": [1, 2]}, {"label": "b", "values": [2, 1]}],
    },
    "heatmap": {"type": "heatmap", "z": [[1, 2], [3, 4]]},  # not bundled: must be reported as such
}
_DRAW_JS = """
var done = arguments[arguments.length - 1], out = {};
var types = Object.keys(arguments[0]);
(async function () {
  for (const t of types) {
    var div = document.createElement('div'); div.id = 'g-' + t; document.body.appendChild(div);
    try {
      await Plotly.newPlot(div, [arguments[0][t]], {width: 300, height: 200});
      out[t] = {drawn: div._fullData.length === 1 && div._fullData[0].type === t,
                layers: div.querySelectorAll('.trace, canvas, .parcoords').length};
    } catch (e) { out[t] = {error: String(e)}; }
  }
  done(out);
}).apply(null, arguments);
"""


@pytest.fixture(scope="module")
def bundle_page() -> Iterator[str]:
    """A blank page that loads only the partial bundle, served over HTTP."""
    page = b"<!DOCTYPE html><html><body><script src='/plotly.js'></script></body></html>"

    class Serve(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = (
                (plotlyjs.BUNDLE.read_bytes(), "text/javascript") if self.path == "/plotly.js" else (page, "text/html")
            )
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Serve)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_each_bundled_trace_draws_in_chromium_and_an_unbundled_one_does_not(bundle_page: str) -> None:
    require_browser()
    for driver in chrome():
        driver.get(bundle_page)
        driver.set_script_timeout(60)
        assert driver.execute_script("return typeof Plotly !== 'undefined' && !!Plotly.newPlot")
        out = driver.execute_async_script(_DRAW_JS, _TRACES)
        for trace in plotlyjs.BUNDLED_TRACES:
            assert out[trace].get("drawn") and out[trace]["layers"] >= 1, (trace, out[trace])
        assert not out["heatmap"].get("drawn"), out["heatmap"]  # proves the check can fail
        errors = [e for e in console_errors(driver) if "favicon" not in e]
        assert errors == [], errors
