"""``nas dashboard``: a live Dash app over a study storage.

The app holds one ``StudyReader`` (incremental, cached reads) and re-reads the storage on a timer.
A fingerprint of every study's trial counts decides whether the figures are rebuilt, so an idle
dashboard costs one cheap query per refresh, and a running search shows up within one period.
"""

from __future__ import annotations

import base64
import gzip
import html as html_text
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from dashboards._diagram import diagram_data, diagram_svg, warm_up
from dashboards._figures import (
    PARETO_HEIGHT,
    ablation_figure,
    hypervolume_figure,
    learning_curve_figure,
    parallel_figure,
    pareto_figure,
)
from dashboards._views import (
    CATEGORIES,
    OBJECTIVES,
    STATES,
    ablation_data,
    empty_reason,
    front_data,
    hypervolume_curve,
    parallel_data,
    reference_point,
    study_summary,
    trial_detail,
    trial_rows,
)
from studies import StudyError, StudyReader, TrialRecord, state_counts

logger = logging.getLogger(__name__)

_TABLE_STYLE = {"fontFamily": "system-ui, sans-serif", "fontSize": "13px", "textAlign": "left", "padding": "3px"}
_FRONT_CONTROLS = {"display": "flex", "flexWrap": "wrap", "alignItems": "end"}
_COPY_STYLE = {"display": "inline-block", "marginLeft": "6px", "cursor": "pointer", "fontSize": "16px"}
_OPTIONAL_STATES = ("REUSED", "INFEASIBLE", "PRUNED", "FAIL", "RUNNING")


def _empty(text: str = "", height: int = 320) -> go.Figure:
    fig = go.Figure()
    if text:
        fig.add_annotation(text=html_text.escape(text), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(template="plotly_white", height=height, xaxis_visible=False, yaxis_visible=False)
    return fig


def _control(label: str, component: Any) -> html.Div:
    return html.Div(
        [html.Label(label, style={"fontSize": "12px", "color": "#555"}), component],
        style={"minWidth": "170px", "marginRight": "12px"},
    )


def _svg_image(spec: dict[str, Any]) -> html.Img:
    svg = diagram_svg(diagram_data(spec))
    src = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return html.Img(id="arch-diagram", src=src, alt="architecture diagram", style={"maxWidth": "100%"})


class _Memo:
    """A small LRU of built views keyed by what they depend on, shared by all browser sessions.

    Figures of 5,000 trials take a few hundred ms to build; a reload, a second viewer or a refresh
    with nothing new gets them from here until the study changes.
    """

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, build: Callable[[], Any]) -> Any:
        text = json.dumps(key, sort_keys=True, default=str)
        with self._lock:
            if text in self._items:
                self._items.move_to_end(text)
                return self._items[text]
        value = build()
        with self._lock:
            self._items[text] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


@dataclass
class _Loaded:
    records: dict[str, list[TrialRecord]]
    error: str | None


def create_app(
    reader: StudyReader, *, storage_label: str, refresh_s: float = 5.0, study: str | None = None
) -> dash.Dash:
    """The Dash app. ``storage_label`` is the URL shown to users and used in export commands
    (pass it with any password hidden)."""
    app = dash.Dash(__name__, title="attention-nas dashboard", update_title="")
    memo = _Memo()
    warming = threading.Event()
    names = reader.study_names()
    initial = [study] if study else names[-1:]
    for name in initial:  # read now, so the first page view finds the cache warm
        reader.records(name)

    def load(selected: Sequence[str]) -> _Loaded:
        records: dict[str, list[TrialRecord]] = {}
        for name in selected:
            try:
                records[name] = reader.records(name)
            except StudyError as exc:
                return _Loaded(records, str(exc))
        return _Loaded(records, None)

    def fingerprint(selected: Sequence[str], loaded: _Loaded) -> Any:
        """What the views depend on in the storage: per selected study, its trial count by state and
        its unfinished trials (whose attributes may still change). In JSON form, because the
        browser hands the previous key back as JSON and tuples would never compare equal."""
        key = [
            [
                n,
                sorted(state_counts(loaded.records.get(n, [])).items()),
                [(r.number, r.state, r.label) for r in loaded.records.get(n, []) if r.state in ("RUNNING", "WAITING")],
            ]
            for n in selected
        ]
        return json.loads(json.dumps([key, loaded.error]))

    view_tabs = dcc.Tabs(
        id="view",
        value="front",
        children=[
            dcc.Tab(
                label="Pareto front",
                value="front",
                id="tab-front",
                children=[
                    html.Div(
                        [
                            # Fixed heights, side by side: a click fills the panel (scrolling inside
                            # it) and never moves the plot or what follows it.
                            dcc.Graph(
                                id="pareto",
                                style={"flex": "3 1 600px", "height": f"{PARETO_HEIGHT}px"},
                                config={"displaylogo": False, "responsive": True},
                            ),
                            html.Div(
                                id="detail",
                                children=html.P("Click a point to see its architecture."),
                                style={
                                    "flex": "2 1 380px",
                                    "height": f"{PARETO_HEIGHT}px",
                                    "overflowY": "auto",
                                    "paddingLeft": "12px",
                                    "boxSizing": "border-box",
                                },
                            ),
                        ],
                        style={"display": "flex", "alignItems": "flex-start"},
                    ),
                    dcc.Graph(id="hypervolume"),
                ],
            ),
            dcc.Tab(
                label="Ablation",
                value="ablation",
                id="tab-ablation",
                children=[html.H3("What each choice does to Dice (first selected study)"), dcc.Graph(id="ablation")],
            ),
            dcc.Tab(
                label="Parallel coordinates", value="parallel", id="tab-parallel", children=[dcc.Graph(id="parallel")]
            ),
            dcc.Tab(
                label="Trials",
                value="trials",
                id="tab-trials",
                children=[
                    dcc.Checklist(
                        id="table-states",
                        options=list(STATES),
                        value=[s for s in STATES if s != "WAITING"],
                        inline=True,
                    ),
                    dash_table.DataTable(  # type: ignore[attr-defined]
                        id="trials-table",
                        columns=[
                            {"name": c, "id": c, "type": "numeric"}
                            for c in ("trial", "dice", "gflops", "params", "memory_mb", "train_s")
                        ]
                        + [{"name": c, "id": c} for c in ("state", "architecture", "error")],
                        sort_action="native",
                        page_size=25,
                        style_cell=_TABLE_STYLE,
                    ),
                ],
            ),
        ],
    )
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            dcc.Interval(id="tick", interval=max(refresh_s, 0.5) * 1000),
            dcc.Store(id="selection", data=initial),
            dcc.Store(id="list-key"),
            dcc.Store(id="front-key"),
            dcc.Store(id="view-key"),
            dcc.Store(id="zoom"),
            html.H1("attention-nas: studies", style={"marginBottom": "4px"}),
            html.Div(f"storage {storage_label} · refreshes every {refresh_s:g} s", style={"color": "#666"}),
            html.Div(id="banner", role="alert", style={"color": "#a00", "margin": "8px 0"}),
            dash_table.DataTable(  # type: ignore[attr-defined]
                id="study-table",
                columns=[
                    {"name": "study", "id": "study"},
                    {"name": "trials", "id": "trials", "type": "numeric"},
                    {"name": "by state", "id": "states"},
                    {"name": "best Dice", "id": "best_dice", "type": "numeric"},
                    {"name": "Pareto size", "id": "pareto", "type": "numeric"},
                    {"name": "hypervolume (Dice×GFLOPs)", "id": "hypervolume", "type": "numeric"},
                ],
                sort_action="native",
                style_cell=_TABLE_STYLE,
            ),
            html.Div(
                [
                    _control(
                        "studies (two or more overlay their fronts)",
                        dcc.Dropdown(id="studies", options=names, value=initial, multi=True),
                    ),
                    html.Div(  # what only the Pareto tab uses: hidden on the other tabs
                        [
                            _control("x axis", dcc.Dropdown(id="x", options=_options(OBJECTIVES), value="gflops")),
                            _control("y axis", dcc.Dropdown(id="y", options=_options(OBJECTIVES), value="dice")),
                            _control("colour by", dcc.Dropdown(id="color-by", options=_cat_options(), value="block")),
                            _control(
                                "symbol by", dcc.Dropdown(id="symbol-by", options=_cat_options(), value="placement")
                            ),
                            _control(
                                "also show",
                                dcc.Checklist(id="show-states", options=list(_OPTIONAL_STATES), value=[], inline=True),
                            ),
                        ],
                        id="front-controls",
                        style=_FRONT_CONTROLS,
                    ),
                ],
                style={"display": "flex", "flexWrap": "wrap", "alignItems": "end", "margin": "16px 0"},
            ),
            html.Div(id="empty-message", className="empty", style={"fontSize": "16px", "margin": "8px 0"}),
            view_tabs,
        ],
        style={"margin": "1.5em", "fontFamily": "system-ui, sans-serif"},
    )

    def from_address(search: str | None) -> list[str]:
        return [s for s in parse_qs((search or "").lstrip("?")).get("study", []) if s]

    @app.callback(Output("studies", "value"), Input("url", "search"))
    def from_url(search: str | None) -> Any:
        """``?study=NAME`` (repeatable) in the address selects studies, for links and bookmarks."""
        known = [s for s in from_address(search) if s in reader.study_names()]
        return known if known else dash.no_update

    @app.callback(Output("selection", "data"), Input("url", "search"), Input("studies", "value"))
    def select(search: str | None, chosen: list[str] | None) -> Any:
        """The studies every view shows: the address's on arrival (unknown names included, so the
        page can say they are unknown), the dropdown's once the user picks."""
        if dash.ctx.triggered_id in (None, "url") and from_address(search):
            return from_address(search)
        return [s for s in (chosen or []) if s]

    @app.callback(
        Output("study-table", "data"),
        Output("studies", "options"),
        Output("list-key", "data"),
        Input("tick", "n_intervals"),
        State("list-key", "data"),
    )
    def refresh(ticks: int | None, previous: Any) -> Any:
        started = time.perf_counter()
        if ticks and not warming.is_set():  # the page is up: now load the diagrams' registry (torch)
            warming.set()
            threading.Thread(target=warm_up, name="nas-dashboard-warm-up", daemon=True).start()
        try:
            available = reader.study_names()
            loaded = load(available)
        except StudyError as exc:
            return [], dash.no_update, {"error": str(exc)}
        key = fingerprint(available, loaded)
        if key == previous:
            return dash.no_update, dash.no_update, dash.no_update
        rows = []
        for name, records in loaded.records.items():
            s = memo.get(
                ["summary", name, fingerprint([name], loaded)],
                lambda name=name, records=records: study_summary(  # type: ignore[misc]
                    name, records, reader.hv_reference(name)
                ),
            )
            rows.append(
                {
                    "study": name,
                    "trials": s.trials,
                    "states": s.counts_text,
                    "best_dice": None if s.best_dice is None else round(s.best_dice, 4),
                    "pareto": s.pareto_size,
                    "hypervolume": round(s.hypervolume, 5),
                }
            )
        logger.debug("study list: %d studies in %.3f s", len(rows), time.perf_counter() - started)
        return rows, available, key

    @app.callback(
        Output("pareto", "figure"),
        Output("hypervolume", "figure"),
        Output("empty-message", "children"),
        Output("banner", "children"),
        Output("front-key", "data"),
        Input("tick", "n_intervals"),
        Input("selection", "data"),
        Input("x", "value"),
        Input("y", "value"),
        Input("color-by", "value"),
        Input("symbol-by", "value"),
        Input("show-states", "value"),
        State("front-key", "data"),
        State("zoom", "data"),
    )
    def front_view(
        _: int | None,
        selected: list[str] | None,
        x: str,
        y: str,
        color_by: str,
        symbol_by: str,
        show: list[str],
        previous: Any,
        zoom: dict[str, Any] | None,
    ) -> Any:
        started = time.perf_counter()
        if not selected:
            return _empty("Choose a study."), _empty(), "No study selected.", None, None
        loaded = load(selected)
        key = json.loads(json.dumps([fingerprint(selected, loaded), x, y, color_by, symbol_by, show]))
        if key == previous:
            return (dash.no_update,) * 5
        if loaded.error is not None:
            return _empty(loaded.error), _empty(), loaded.error, loaded.error, key

        def build() -> tuple[Any, ...]:
            reasons = [r for name in selected if (r := empty_reason(name, loaded.records[name])) is not None]
            try:
                data = front_data(loaded.records, x=x, y=y, states=show or (), color_by=color_by, symbol_by=symbol_by)
            except ValueError as exc:
                return _empty(str(exc)), _empty(), str(exc)
            ox, oy = OBJECTIVES[x], OBJECTIVES[y]
            reference = reference_point(loaded.records, ox, oy)
            fixed = reader.hv_reference(selected[0]) if len(loaded.records) == 1 else None
            if fixed is not None and (ox.name, oy.name) == ("gflops", "dice"):
                reference = fixed  # the study's own, fixed at its creation: the curve never falls
            curves = [hypervolume_curve(name, rs, ox, oy, reference) for name, rs in loaded.records.items()]
            title = " vs ".join(selected) if len(selected) > 1 else f"Study {selected[0]}"
            return (
                pareto_figure(data, title=title),
                hypervolume_figure(curves, reference, f"hypervolume ({oy.name} × {ox.name})"),
                " ".join(reasons),
            )

        front, *rest = memo.get(["front", selected, key], build)
        if dash.ctx.triggered_id in ("tick", "show-states") and zoom and zoom.get("axes") == [x, y]:
            front = _zoomed(front, zoom)
        out = (front, *rest, None, key)
        logger.debug("front of %s built in %.3f s", selected, time.perf_counter() - started)
        return out

    @app.callback(
        Output("ablation", "figure"),
        Output("parallel", "figure"),
        Output("trials-table", "data"),
        Output("view-key", "data"),
        Input("view", "value"),
        Input("tick", "n_intervals"),
        Input("selection", "data"),
        Input("table-states", "value"),
        State("view-key", "data"),
    )
    def other_views(view: str, _: int | None, selection: list[str] | None, states: list[str], previous: Any) -> Any:
        """Only the open tab is built: parallel coordinates of thousands of trials are costly to draw."""
        selected = (selection or [])[:1]
        if view == "front" or not selected:
            return dash.no_update, dash.no_update, dash.no_update, None
        loaded = load(selected)
        key = json.loads(json.dumps([view, fingerprint(selected, loaded), states]))
        if key == previous:
            return (dash.no_update,) * 4
        if loaded.error is not None:
            blank = _empty(loaded.error)
            return blank, blank, [], key
        records = loaded.records[selected[0]]
        if view == "ablation":
            keys = sorted({r.block for r in records})  # the front's colours (colour by attention type)
            figure = memo.get(
                ["ablation", selected, key], lambda: ablation_figure(ablation_data(records), colours=keys)
            )
            return figure, dash.no_update, dash.no_update, key
        if view == "parallel":
            figure = memo.get(["parallel", selected, key], lambda: parallel_figure(parallel_data(records)))
            return dash.no_update, figure, dash.no_update, key
        return dash.no_update, dash.no_update, trial_rows(records, states or ()), key

    @app.callback(Output("front-controls", "style"), Input("view", "value"))
    def front_controls(view: str) -> dict[str, str]:
        return _FRONT_CONTROLS if view == "front" else {**_FRONT_CONTROLS, "display": "none"}

    @app.callback(
        Output("zoom", "data"),
        Input("pareto", "relayoutData"),
        State("x", "value"),
        State("y", "value"),
        State("zoom", "data"),
        prevent_initial_call=True,
    )
    def remember_zoom(event: dict[str, Any] | None, x: str, y: str, previous: dict[str, Any] | None) -> Any:
        """The user's zoom, for the axes it was made on: a refresh redraws the figure with it.

        Plotly's ``uirevision`` should keep it, but dcc.Graph's redraw drops it (the browser test
        of a refresh catches this), so the app carries it itself."""
        if not event:
            return dash.no_update
        zoom = dict(previous) if previous and previous.get("axes") == [x, y] else {"axes": [x, y]}
        for axis in ("xaxis", "yaxis"):
            low, high = event.get(f"{axis}.range[0]"), event.get(f"{axis}.range[1]")
            if event.get(f"{axis}.autorange"):
                zoom.pop(axis, None)
            elif low is not None and high is not None:
                zoom[axis] = [low, high]
            elif isinstance(event.get(f"{axis}.range"), list):
                zoom[axis] = list(event[f"{axis}.range"])
        return zoom

    @app.callback(Output("detail", "children"), Input("pareto", "clickData"), prevent_initial_call=True)
    def detail(click: dict[str, Any] | None) -> Any:
        if not click or not click.get("points"):
            return dash.no_update
        custom = click["points"][0].get("customdata")
        if not custom:
            return dash.no_update
        study, number = str(custom[0]), int(custom[1])
        loaded = load([study])
        if loaded.error:
            return html.P(loaded.error)
        match = [r for r in loaded.records[study] if r.number == number]
        if not match:
            return html.P(f"Trial {number} is no longer in study {study!r}.")
        info = trial_detail(study, match[0], storage_label)
        return [
            html.H3([f"Trial {number} of {study}: ", html.Code(info.label)], id="detail-title", style={"marginTop": 0}),
            html.Div(  # first, so that it is in view beside the plot without scrolling
                [
                    "Export it: ",
                    html.Code(info.export_command, id="export-command"),
                    dcc.Clipboard(target_id="export-command", title="copy", id="copy-export", style=_COPY_STYLE),
                ],
                style={"marginBottom": "8px"},
            ),
            _svg_image(dict(info.spec)) if info.spec else html.P("This trial recorded no architecture."),
            html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in info.metrics], style=_TABLE_STYLE),
            dcc.Graph(figure=learning_curve_figure(info), id="learning-curve", style={"height": "300px"}),
        ]

    return app


def _zoomed(figure: Any, zoom: dict[str, Any]) -> Any:
    """``figure`` (shared by the memo: not modified) with the user's axis ranges, as a plain dict."""
    if not isinstance(figure, go.Figure) or not any(a in zoom for a in ("xaxis", "yaxis")):
        return figure
    plain = figure.to_plotly_json()
    layout = dict(plain["layout"])
    for axis in ("xaxis", "yaxis"):
        if axis in zoom:
            layout[axis] = {**layout.get(axis, {}), "range": zoom[axis], "autorange": False}
    return {"data": plain["data"], "layout": layout}


def _options(objectives: dict[str, Any]) -> list[dict[str, str]]:
    return [{"label": o.label, "value": name} for name, o in objectives.items()]


def _cat_options() -> list[dict[str, str]]:
    return [{"label": label, "value": name} for name, (label, _) in CATEGORIES.items()]


#: Content types worth compressing (plotly.js is 4.8 MB as Dash serves it, 1.4 MB gzipped).
_COMPRESSIBLE = ("application/javascript", "text/javascript", "application/json", "text/html", "text/css")


class GzipMiddleware:
    """gzip for every text response the browser accepts it for; fingerprinted bundles compressed once.

    Dash serves its JavaScript uncompressed (``compress=True`` needs flask-compress, which we do not
    depend on): 6.5 MB on a first visit, where 2 MB do.
    """

    def __init__(self, app: Callable[..., Any], *, minimum: int = 1024) -> None:
        self._app = app
        self._minimum = minimum
        self._bundles: dict[str, tuple[str, list[tuple[str, str]], bytes]] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "gzip" not in environ.get("HTTP_ACCEPT_ENCODING", "") or environ.get("REQUEST_METHOD") == "HEAD":
            return self._app(environ, start_response)
        key = environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", "")
        bundle = key.startswith("/_dash-component-suites/") and environ.get("REQUEST_METHOD") == "GET"
        if bundle and key in self._bundles:
            status, headers, body = self._bundles[key]
            start_response(status, headers)
            return [body]
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return chunks.append

        result = self._app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status, headers = captured["status"], list(captured["headers"])
        body = b"".join(chunks)
        names = {k.lower(): v for k, v in headers}
        ctype = names.get("content-type", "").split(";")[0].strip()
        if (
            status.startswith("200")
            and ctype in _COMPRESSIBLE
            and "content-encoding" not in names
            and len(body) >= self._minimum
        ):
            body = gzip.compress(body, compresslevel=6)
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "vary")]
            headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding"), ("Content-Length", str(len(body)))]
            if bundle:
                with self._lock:
                    self._bundles[key] = (status, headers, body)
        start_response(status, headers)
        return [body]


class _QuietHandler(WSGIRequestHandler):
    """No access log: the dashboard polls every few seconds and would flood the terminal."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class DashboardServer:
    """The app served by werkzeug in a background thread (``nas dashboard`` and the browser tests)."""

    def __init__(self, app: dash.Dash, *, host: str = "127.0.0.1", port: int = 8050) -> None:
        # Bind the socket here: werkzeug's own bind prints and calls sys.exit on a busy port, while
        # the CLI wants an OSError it can turn into one line.
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(128)
        except OSError:
            self._socket.close()
            raise
        bound = self._socket.getsockname()[1]
        self._server: BaseWSGIServer = make_server(
            host,
            bound,
            GzipMiddleware(app.server.wsgi_app),
            threaded=True,
            request_handler=_QuietHandler,
            fd=self._socket.fileno(),
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="nas-dashboard", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://[{name}]:{port}/" if ":" in name else f"http://{name}:{port}/"

    def start(self) -> DashboardServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._socket.close()
