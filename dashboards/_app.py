"""``nas dashboard``: a live Dash app over a study storage.

The app holds one ``StudyReader`` (incremental, cached reads) and re-reads the storage on a timer.
A fingerprint of every study's trial counts decides whether the figures are rebuilt, so an idle
dashboard costs one cheap query per refresh, and a running search shows up within one period.
"""

from __future__ import annotations

import base64
import functools
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
from urllib.parse import parse_qs, urlencode, urlsplit

import dash
import flask
import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from dashboards._diagram import diagram_data, diagram_svg
from dashboards._figures import (
    PARETO_HEIGHT,
    ablation_figure,
    curves_figure,
    history_figure,
    hypervolume_figure,
    importance_figure,
    learning_curve_figure,
    parallel_figure,
    pareto_figure,
)
from dashboards._notes import Saved, read_note, write_note
from dashboards._plotlyjs import partial_bundle
from dashboards._views import (
    CATEGORIES,
    OBJECTIVES,
    STATES,
    ablation_data,
    curve_set,
    empty_reason,
    front_data,
    hypervolume_curve,
    objective_history,
    parallel_data,
    param_importance,
    reference_point,
    study_objective_names,
    study_summary,
    trial_detail,
    trial_rows,
    under_budget,
)
from studies import StudyError, StudyReader, TrialRecord, state_counts

logger = logging.getLogger(__name__)

_TABLE_STYLE = {"fontFamily": "system-ui, sans-serif", "fontSize": "13px", "textAlign": "left", "padding": "3px"}
_FRONT_CONTROLS = {"display": "flex", "flexWrap": "wrap", "alignItems": "end"}
_COPY_STYLE = {"display": "inline-block", "marginLeft": "6px", "cursor": "pointer", "fontSize": "16px"}
#: Dash's page with two inline scripts around its bundles. Dash loads @babel/polyfill 7 (core-js 2)
#: for its regenerator runtime; on today's browsers it also swaps native ``trim``, ``parseFloat``,
#: ``parseInt`` and ``Math.sinh`` for JavaScript versions (its whitespace check predates Unicode
#: 6.3), which plotly.js calls for every colour and number it parses: a fifth of the time a
#: 5,000-trial front took to draw in headless Chromium. The natives are put back once the bundles ran.
_NATIVES = (
    "String.prototype.trim String.prototype.trimStart String.prototype.trimEnd String.prototype.trimLeft "
    "String.prototype.trimRight Number.parseFloat Number.parseInt Math.sinh window.parseFloat window.parseInt"
)
_INDEX = dash.dash._default_index.replace(
    "{%scripts%}",
    "<script>window.__nasNatives = '"
    + _NATIVES
    + "'.split(' ').map(function (p) { var i = p.lastIndexOf('.'), o = eval(p.slice(0, i));"
    " return [o, p.slice(i + 1), o[p.slice(i + 1)]]; });</script>\n"
    "            {%scripts%}\n"
    "            <script>window.__nasNatives.forEach(function (n) { if (n[2]) n[0][n[1]] = n[2]; });</script>",
)
_OPTIONAL_STATES = ("REUSED", "INFEASIBLE", "PRUNED", "FAIL", "RUNNING")
_NOTE_STYLE = {"width": "100%", "height": "70px", "boxSizing": "border-box", "display": "block"}
_STATUS_STYLE = {"display": "block", "fontSize": "13px", "color": "#555", "marginTop": "4px"}
#: The Pareto tab's controls on arrival: x, y, colour by, symbol by, states also shown, GFLOPs budget.
FRONT_DEFAULTS: tuple[Any, ...] = ("gflops", "dice", "block", "placement", [], None)


@functools.lru_cache(maxsize=64)
def _empty(text: str = "", height: int = 320) -> go.Figure:
    """A blank figure saying ``text``; shared (plotly's template makes each one cost ~50 ms): not
    to be modified."""
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
        self._building: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, build: Callable[[], Any]) -> Any:
        """The value of ``key``, built once: a caller asking while another builds it waits for that
        build (two viewers, or the server's warm-up and the first visit, on two cores)."""
        text = json.dumps(key, sort_keys=True, default=str)
        while True:
            with self._lock:
                if text in self._items:
                    self._items.move_to_end(text)
                    return self._items[text]
                pending = self._building.get(text)
                if pending is None:
                    pending = self._building[text] = threading.Event()
                    break
            pending.wait()  # then look again: built, or the build failed and this caller builds it
        try:
            value = build()
            with self._lock:
                self._items[text] = value
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._building[text]
            pending.set()


@dataclass
class _Loaded:
    records: dict[str, list[TrialRecord]]
    error: str | None


def create_app(
    reader: StudyReader,
    *,
    storage_label: str,
    refresh_s: float = 5.0,
    study: str | None = None,
    storage: Any = None,
) -> dash.Dash:
    """The Dash app. ``storage_label`` is the URL shown to users and used in export commands
    (pass it with any password hidden). ``storage``: the Optuna storage that notes are written to
    (default: the reader's)."""
    if storage is None:
        storage = reader.storage
    app = dash.Dash(__name__, title="attention-nas dashboard", update_title="", index_string=_INDEX)
    _serve_partial_plotly(app)
    memo = _Memo()

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

    def first_studies(names: Sequence[str]) -> list[str]:
        """What a page without ``?study=`` shows: the server's ``--study``, else the newest study."""
        return [study] if study else list(names[-1:])

    def page(skeleton: bool | None = None) -> html.Div:
        """The page, built for each visit: the study list as it is now, and the first view's
        figures inside it, so the front is drawn as soon as plotly.js is loaded rather than after
        three callback round trips (the callbacks find their key unchanged and send nothing).

        ``skeleton``: every component, no data. Dash also calls the layout to check it, once when
        it is set and once on the server's first request, whatever its address; a 5,000-trial
        study's front is built only for the page's own request for its layout."""
        if skeleton is None:
            skeleton = not (flask.has_request_context() and flask.request.path.endswith("/_dash-layout"))
        rows: list[dict[str, Any]] = []
        names: list[str] = []
        list_key: Any = None
        pareto: Any = _empty()
        hypervolume: Any = _empty()
        message: Any = None
        banner: Any = None
        key: Any = None
        initial: list[str] = [study] if study else []
        if not skeleton:
            listed = list_outputs()
            assert listed is not None  # there is no previous key to match
            rows, available, list_key = listed
            names = available or []  # None: the storage cannot be read; the page says so, the timer retries
            error = None if available is not None else str(list_key["error"])
            # Dash asks for the layout from the page, so the page's address (``?study=``) is the
            # request's Referer: the first view is of the studies the address names, never a flash
            # of another study's front before the callbacks correct it.
            initial = from_address(urlsplit(flask.request.referrer or "").query) or first_studies(names)
            first = front_outputs(initial, *FRONT_DEFAULTS)
            assert first is not None  # there is no previous key to match
            pareto, hypervolume, message, banner, key = first
            if error is not None:
                message = banner = error

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
                                    figure=pareto,
                                    style={"flex": "3 1 600px", "height": f"{PARETO_HEIGHT}px"},
                                    config={"displaylogo": False, "responsive": True},
                                ),
                                html.Div(
                                    [
                                        html.Div(
                                            id="detail", children=html.P("Click a point to see its architecture.")
                                        ),
                                        html.Div(
                                            [
                                                html.Label(
                                                    "Note on this trial (saved in the storage)", htmlFor="trial-note"
                                                ),
                                                dcc.Textarea(id="trial-note", style=_NOTE_STYLE),
                                                html.Button("Save note", id="save-trial-note", n_clicks=0),
                                                html.Span(id="trial-note-status", role="status", style=_STATUS_STYLE),
                                            ],
                                            id="trial-note-box",
                                            style={"display": "none"},
                                        ),
                                    ],
                                    id="detail-panel",
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
                        dcc.Graph(id="hypervolume", figure=hypervolume),
                    ],
                ),
                dcc.Tab(
                    label="Ablation",
                    value="ablation",
                    id="tab-ablation",
                    children=[
                        html.H3("What each choice does to Dice (first selected study)"),
                        dcc.Graph(id="ablation"),
                    ],
                ),
                dcc.Tab(
                    label="Parallel coordinates",
                    value="parallel",
                    id="tab-parallel",
                    children=[dcc.Graph(id="parallel")],
                ),
                dcc.Tab(
                    label="History",
                    value="history",
                    id="tab-history",
                    children=[
                        html.H3("Each objective by trial, with the best so far (first selected study)"),
                        dcc.Graph(id="history"),
                    ],
                ),
                dcc.Tab(
                    label="Importance",
                    value="importance",
                    id="tab-importance",
                    children=[
                        html.H3("Which architecture choices matter, per objective (first selected study)"),
                        html.P(
                            "The share of each objective's variance over the COMPLETE trials that one choice of "
                            "the flattened spec explains on its own (ε², the first-order term of a functional "
                            "ANOVA, computed on the trials: Optuna's fANOVA needs scikit-learn). Choices that go "
                            "together share what they explain.",
                            style={"color": "#555", "maxWidth": "900px"},
                        ),
                        dcc.Graph(id="importance"),
                    ],
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
                        html.P(
                            "Filter a column by typing in the row under its name (numbers: >0.8, <=0.1, =3; text: "
                            "se), hide columns with their eye or Toggle Columns, download what is shown with "
                            "Export; tick trials to overlay their learning curves below; click a trial number to "
                            "open the trial beside the front.",
                            style={"color": "#555", "fontSize": "13px"},
                        ),
                        dash_table.DataTable(  # type: ignore[attr-defined]
                            id="trials-table",
                            columns=[
                                {"name": c, "id": c, "type": "numeric", "hideable": c != "trial"}
                                for c in ("trial", "dice", "gflops", "params", "memory_mb", "train_s")
                            ]
                            + [{"name": c, "id": c, "hideable": True} for c in ("state", "architecture", "error")],
                            sort_action="native",
                            filter_action="native",
                            filter_options={"placeholder_text": "filter…"},
                            row_selectable="multi",
                            selected_row_ids=[],
                            export_format="csv",
                            export_headers="names",
                            page_size=25,
                            style_cell=_TABLE_STYLE,
                        ),
                        dcc.Graph(id="curves"),
                    ],
                ),
            ],
        )
        return html.Div(
            [
                dcc.Location(id="url", refresh=False),  # a click writes the trial into the address
                dcc.Interval(id="tick", interval=max(refresh_s, 0.5) * 1000),
                dcc.Store(id="selection", data=initial),
                dcc.Store(id="list-key", data=list_key),
                dcc.Store(id="front-key", data=key),
                dcc.Store(id="view-key"),
                dcc.Store(id="zoom"),
                dcc.Store(id="open-trial"),  # [study, number] of the trial in the detail panel
                dcc.Store(id="trial-note-seen"),  # the trial's note as stored when it was opened
                dcc.Store(id="study-note-seen"),  # [study, its note as stored when it was shown]
                html.H1("attention-nas: studies", style={"marginBottom": "4px"}),
                html.Div(f"storage {storage_label} · refreshes every {refresh_s:g} s", style={"color": "#666"}),
                html.Div(id="banner", children=banner, role="alert", style={"color": "#a00", "margin": "8px 0"}),
                dash_table.DataTable(  # type: ignore[attr-defined]
                    id="study-table",
                    data=rows,
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
                            dcc.Dropdown(
                                id="studies", options=names, value=[s for s in initial if s in names], multi=True
                            ),
                        ),
                        html.Div(  # what only the Pareto tab uses: hidden on the other tabs
                            [
                                _control(
                                    "x axis",
                                    dcc.Dropdown(id="x", options=_options(OBJECTIVES), value=FRONT_DEFAULTS[0]),
                                ),
                                _control(
                                    "y axis",
                                    dcc.Dropdown(id="y", options=_options(OBJECTIVES), value=FRONT_DEFAULTS[1]),
                                ),
                                _control(
                                    "colour by",
                                    dcc.Dropdown(id="color-by", options=_cat_options(), value=FRONT_DEFAULTS[2]),
                                ),
                                _control(
                                    "symbol by",
                                    dcc.Dropdown(id="symbol-by", options=_cat_options(), value=FRONT_DEFAULTS[3]),
                                ),
                                _control(
                                    "GFLOPs at most (front of those trials)",
                                    dcc.Input(
                                        id="budget",
                                        type="number",
                                        min=0,
                                        step="any",
                                        placeholder="no limit",
                                        debounce=True,
                                        style={"width": "160px"},
                                    ),
                                ),
                                _control(
                                    "also show",
                                    dcc.Checklist(
                                        id="show-states",
                                        options=list(_OPTIONAL_STATES),
                                        value=FRONT_DEFAULTS[4],
                                        inline=True,
                                    ),
                                ),
                            ],
                            id="front-controls",
                            style=_FRONT_CONTROLS,
                        ),
                    ],
                    style={"display": "flex", "flexWrap": "wrap", "alignItems": "end", "margin": "16px 0"},
                ),
                html.Details(
                    [
                        html.Summary("Note on the study (saved in the storage)", id="study-note-summary"),
                        dcc.Textarea(id="study-note", style=_NOTE_STYLE),
                        html.Button("Save note", id="save-study-note", n_clicks=0),
                        html.Span(id="study-note-status", role="status", style=_STATUS_STYLE),
                    ],
                    id="study-note-box",
                    style={"margin": "0 0 8px 0"},
                ),
                html.Div(
                    id="empty-message",
                    children=message,
                    className="empty",
                    style={"fontSize": "16px", "margin": "8px 0"},
                ),
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
        out = list_outputs(previous)
        if out is None:
            return dash.no_update, dash.no_update, dash.no_update
        rows, available, key = out
        return rows, dash.no_update if available is None else available, key

    def list_outputs(previous: Any = None) -> tuple[list[dict[str, Any]], list[str] | None, Any] | None:
        """The study table's rows, the study names and their key, or None when the key is
        ``previous``; names are None when the storage cannot be read (the key says why)."""
        started = time.perf_counter()
        try:
            available = reader.study_names()
            loaded = load(available)
        except StudyError as exc:
            return [], None, {"error": str(exc)}
        key = fingerprint(available, loaded)
        if key == previous:
            return None
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
        Input("budget", "value"),
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
        budget: float | None,
        previous: Any,
        zoom: dict[str, Any] | None,
    ) -> Any:
        started = time.perf_counter()
        out = front_outputs(selected, x, y, color_by, symbol_by, show, budget, previous)
        if out is None:
            return (dash.no_update,) * 5
        front, *rest = out
        if dash.ctx.triggered_id in ("tick", "show-states") and zoom and zoom.get("axes") == [x, y]:
            front = _zoomed(front, zoom)
        logger.debug("front of %s built in %.3f s", selected, time.perf_counter() - started)
        return (front, *rest)

    def front_outputs(
        selected: Sequence[str] | None,
        x: str,
        y: str,
        color_by: str,
        symbol_by: str,
        show: Sequence[str] | None,
        budget: float | None,
        previous: Any = None,
    ) -> tuple[Any, ...] | None:
        """The Pareto tab's outputs (front, hypervolume, message, banner, key), or None when the
        key is ``previous`` (nothing it shows has changed)."""
        if not selected:
            return _empty("Choose a study."), _empty(), "No study selected.", None, None
        loaded = load(selected)
        budget = float(budget) if isinstance(budget, int | float) and budget >= 0 else None
        key = json.loads(json.dumps([fingerprint(selected, loaded), x, y, color_by, symbol_by, show, budget]))
        if key == previous:
            return None
        if loaded.error is not None:
            return _empty(loaded.error), _empty(), loaded.error, loaded.error, key

        def build() -> tuple[Any, ...]:
            reasons = [r for name in selected if (r := empty_reason(name, loaded.records[name])) is not None]
            # under a GFLOPs budget every view of this tab (front, knee, hypervolume) is of those trials only
            records = {name: under_budget(rs, budget) for name, rs in loaded.records.items()}
            if budget is not None and not reasons and not any(records.values()):
                text = f"No trial at or below {budget:g} GFLOPs."
                return _empty(text), _empty(), text
            try:
                data = front_data(records, x=x, y=y, states=show or (), color_by=color_by, symbol_by=symbol_by)
            except ValueError as exc:
                return _empty(str(exc)), _empty(), str(exc)
            ox, oy = OBJECTIVES[x], OBJECTIVES[y]
            reference = reference_point(loaded.records, ox, oy)
            fixed = reader.hv_reference(selected[0]) if len(loaded.records) == 1 else None
            if fixed is not None and (ox.name, oy.name) == ("gflops", "dice"):
                reference = fixed  # the study's own, fixed at its creation: the curve never falls
            curves = [hypervolume_curve(name, rs, ox, oy, reference) for name, rs in records.items()]
            title = " vs ".join(selected) if len(selected) > 1 else f"Study {selected[0]}"
            if budget is not None:
                title += f" · trials at or below {budget:g} GFLOPs"
            return (
                pareto_figure(data, title=title),
                hypervolume_figure(curves, reference, f"hypervolume ({oy.name} × {ox.name})"),
                " ".join(reasons),
            )

        return (*memo.get(["front", selected, key], build), None, key)

    tab_outputs = ("ablation", "parallel", "history", "importance")

    @app.callback(
        *(Output(name, "figure") for name in tab_outputs),
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
        skip = (dash.no_update,) * (len(tab_outputs) + 1)
        if view == "front" or not selected:
            return (*skip, None)
        loaded = load(selected)
        key = json.loads(json.dumps([view, fingerprint(selected, loaded), states]))
        if key == previous:
            return (*skip, dash.no_update)
        if loaded.error is not None:
            blank = _empty(loaded.error)
            return (*(blank,) * len(tab_outputs), [], key)
        records = loaded.records[selected[0]]
        builders: dict[str, Callable[[], Any]] = {
            # the front's colours (colour by attention type)
            "ablation": lambda: ablation_figure(ablation_data(records), colours=sorted({r.block for r in records})),
            "parallel": lambda: parallel_figure(parallel_data(records)),
            "history": lambda: history_figure(objective_history(records)),
            "importance": lambda: importance_figure(
                [param_importance(records, name) for name in study_objective_names(records)]
            ),
        }
        if view in builders:
            figure = memo.get([view, selected, key], builders[view])
            return (*(figure if name == view else dash.no_update for name in tab_outputs), dash.no_update, key)
        rows = [{**row, "id": row["trial"]} for row in trial_rows(records, states or ())]
        return (*(dash.no_update,) * len(tab_outputs), rows, key)

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        Output("view", "value"),
        Input("trials-table", "active_cell"),
        State("selection", "data"),
        prevent_initial_call=True,
    )
    def open_row(cell: dict[str, Any] | None, selection: list[str] | None) -> Any:
        """A click on a trial number in the table opens that trial beside the front (by its address)."""
        studies = [s for s in selection or [] if s]
        if not cell or cell.get("column_id") != "trial" or cell.get("row_id") is None or not studies:
            return dash.no_update, dash.no_update
        query = [("study", s) for s in studies] + [("trial", str(int(cell["row_id"])))]
        return "?" + urlencode(query), "front"

    @app.callback(Output("trials-table", "selected_row_ids"), Input("selection", "data"), prevent_initial_call=True)
    def untick(_: Any) -> list[int]:
        """Ticked trials are of the study shown: another study starts with none."""
        return []

    @app.callback(
        Output("curves", "figure"),
        Input("trials-table", "selected_row_ids"),
        State("selection", "data"),
    )
    def curves(numbers: list[int] | None, selection: list[str] | None) -> Any:
        """The learning curves of the trials ticked in the table, overlaid (a finished trial's curve
        never changes: no refresh redraws them)."""
        selected = (selection or [])[:1]
        if not selected:
            return _empty("Choose a study.")
        loaded = load(selected)
        if loaded.error is not None:
            return _empty(loaded.error)
        return curves_figure(curve_set(loaded.records[selected[0]], [int(n) for n in numbers or []]))

    @app.callback(Output("front-controls", "style"), Input("view", "value"))
    def front_controls(view: str) -> dict[str, str]:
        return _FRONT_CONTROLS if view == "front" else {**_FRONT_CONTROLS, "display": "none"}

    # The user's zoom, for the axes it was made on: a refresh redraws the figure with it. Plotly's
    # ``uirevision`` should keep it, but dcc.Graph's redraw drops it (the browser test of a refresh
    # catches this), so the app carries it itself. In the browser: a server callback's answer is
    # dropped when the next event (``{"autosize": true}`` as the page settles) comes before it, and
    # the zoom with it; here every event is handled, in order, and events about other things
    # leave the zoom as it is.
    app.clientside_callback(
        """
        function (event, x, y, previous) {
            var none = window.dash_clientside.no_update;
            if (!event || !Object.keys(event).some(k => /^[xy]axis\\.(range|autorange)/.test(k))) return none;
            var same = previous && previous.axes && previous.axes[0] === x && previous.axes[1] === y;
            var zoom = same ? Object.assign({}, previous) : {axes: [x, y]};
            ['xaxis', 'yaxis'].forEach(function (a) {
                var low = event[a + '.range[0]'], high = event[a + '.range[1]'];
                if (event[a + '.autorange']) delete zoom[a];
                else if (low !== undefined && high !== undefined) zoom[a] = [low, high];
                else if (Array.isArray(event[a + '.range'])) zoom[a] = event[a + '.range'].slice();
            });
            return zoom;
        }
        """,
        Output("zoom", "data"),
        Input("pareto", "relayoutData"),
        State("x", "value"),
        State("y", "value"),
        State("zoom", "data"),
        prevent_initial_call=True,
    )

    def detail_of(study: str, number: int) -> Any:
        loaded = load([study])
        if loaded.error:
            return html.P(loaded.error)
        match = [r for r in loaded.records[study] if r.number == number]
        if not match:
            return html.P(f"Trial {number} is not in study {study!r}.", id="detail-missing")
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

    @app.callback(
        Output("detail", "children"),
        Output("url", "search"),
        Output("open-trial", "data"),
        Input("pareto", "clickData"),
        Input("url", "search"),
        State("selection", "data"),
    )
    def detail(click: dict[str, Any] | None, search: str | None, selection: list[str] | None) -> Any:
        """A click opens the trial and writes it into the address (``?study=S&trial=N``, with
        ``trial_study=T`` when T is not the first study shown): a trial has a link, and an address
        with a trial opens it."""
        if dash.ctx.triggered_id == "pareto":
            if not click or not click.get("points"):
                return dash.no_update, dash.no_update, dash.no_update
            custom = click["points"][0].get("customdata")
            if not custom:
                return dash.no_update, dash.no_update, dash.no_update
            study, number = str(custom[0]), int(custom[1])
            studies = from_address(search) or [s for s in (selection or []) if s] or [study]
            query = [("study", s) for s in studies] + [("trial", str(number))]
            if study != studies[0]:
                query.append(("trial_study", study))
            return detail_of(study, number), "?" + urlencode(query), [study, number]
        asked = parse_qs((search or "").lstrip("?"))
        trial = (asked.get("trial") or [""])[0]
        study = (asked.get("trial_study") or from_address(search) or [""])[0]
        if not trial or not study:
            return dash.no_update, dash.no_update, dash.no_update
        if not trial.isdigit():
            message = html.P(f"trial={trial!r} in the address is not a trial number.", id="detail-missing")
            return message, dash.no_update, None
        return detail_of(study, int(trial)), dash.no_update, [study, int(trial)]

    @app.callback(
        Output("trial-note", "value"),
        Output("trial-note-seen", "data"),
        Output("trial-note-box", "style"),
        Output("trial-note-status", "children"),
        Input("open-trial", "data"),
    )
    def trial_note(opened: list[Any] | None) -> Any:
        """The opened trial's note, read afresh from the storage."""
        if not opened:
            return "", None, {"display": "none"}, ""
        study, number = str(opened[0]), int(opened[1])
        try:
            if not any(r.number == number for r in reader.records(study)):
                return "", None, {"display": "none"}, ""
            text = read_note(storage, study, number)
        except Exception as exc:  # an unknown study, a storage that cannot be read: nothing to save
            return "", None, {"display": "none"}, f"cannot read the note ({exc})"
        return text, [study, number, text], {"marginTop": "8px"}, ""

    @app.callback(
        Output("trial-note-status", "children", allow_duplicate=True),
        Output("trial-note-seen", "data", allow_duplicate=True),
        Input("save-trial-note", "n_clicks"),
        State("trial-note", "value"),
        State("trial-note-seen", "data"),
        prevent_initial_call=True,
    )
    def save_trial_note(clicks: int, text: str | None, seen: list[Any] | None) -> Any:
        if not clicks or not seen:
            return dash.no_update, dash.no_update
        study, number, before = str(seen[0]), int(seen[1]), str(seen[2])
        saved = save(study, number, text or "", before)
        return saved.message, [study, number, saved.text] if saved.ok else dash.no_update

    @app.callback(
        Output("study-note", "value"),
        Output("study-note-seen", "data"),
        Output("study-note-summary", "children"),
        Output("study-note-status", "children"),
        Input("selection", "data"),
    )
    def study_note(selection: list[str] | None) -> Any:
        """The first selected study's note, read afresh from the storage."""
        try:
            names = reader.study_names()
        except StudyError as exc:
            return "", None, "Note on the study (saved in the storage)", str(exc)
        study = next((s for s in selection or [] if s in names), None)
        if study is None:
            return "", None, "Note on the study (saved in the storage)", ""
        try:
            text = read_note(storage, study)
        except Exception as exc:
            return "", None, f"Note on study {study}", f"cannot read the note ({exc})"
        summary = f"Note on study {study}" + (f": {text.splitlines()[0][:80]}" if text.strip() else " (none yet)")
        return text, [study, text], summary, ""

    @app.callback(
        Output("study-note-status", "children", allow_duplicate=True),
        Output("study-note-seen", "data", allow_duplicate=True),
        Input("save-study-note", "n_clicks"),
        State("study-note", "value"),
        State("study-note-seen", "data"),
        prevent_initial_call=True,
    )
    def save_study_note(clicks: int, text: str | None, seen: list[Any] | None) -> Any:
        if not clicks or not seen:
            return dash.no_update, dash.no_update
        study, before = str(seen[0]), str(seen[1])
        saved = save(study, None, text or "", before)
        return saved.message, [study, saved.text] if saved.ok else dash.no_update

    def save(study: str, number: int | None, text: str, before: str) -> Saved:
        try:
            return write_note(storage, study, number, text, expected=before)
        except Exception as exc:  # e.g. a read-only database: nothing was written
            logger.warning("could not save a note of %s: %s", study, exc)
            return Saved(False, f"Not saved: the storage refused the write ({exc}).", before)

    # Dash calls a layout function once when it is set, to check the callbacks' ids: a page
    # without data does for that (with the data, the 5,000-trial study was read and its front
    # built before the server could start: 2-2.5 s).
    app.validation_layout = page(skeleton=True)  # type: ignore[assignment]
    app.layout = page

    def warm() -> None:
        """Read the studies and build the study table and the first study's front while the
        server starts listening: the first visit then finds them in the cache (the memo makes a
        request that arrives meanwhile wait for this build rather than start its own)."""
        try:
            listed = list_outputs()
            names = (listed[1] if listed else None) or []
            front_outputs(first_studies(names), *FRONT_DEFAULTS)
        except Exception:  # the page itself reports a broken storage
            logger.debug("warming the first view failed", exc_info=True)

    threading.Thread(target=warm, name="nas-dashboard-first-view", daemon=True).start()
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


#: Where the page loads our partial plotly.js from (a name that changes with its bytes: cached for good).
PLOTLY_ROUTE = "_nas/"


def _serve_partial_plotly(app: dash.Dash) -> None:
    """Load our partial plotly.js (``dashboards._plotlyjs``) before Dash's bundles, when it fits the
    installed plotly: dcc.Graph then finds ``window.Plotly`` and never fetches the full 4.8 MB."""
    js = partial_bundle()
    if js is None:
        return
    path = app.config.requests_pathname_prefix + PLOTLY_ROUTE + js.filename

    def send() -> flask.Response:
        return flask.Response(
            js.source,
            mimetype="application/javascript",
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    app.server.add_url_rule(
        app.config.routes_pathname_prefix + PLOTLY_ROUTE + js.filename, endpoint="nas_plotly", view_func=send
    )
    app.index_string = app.index_string.replace(
        "{%scripts%}", f'<script src="{path}"></script>\n            {{%scripts%}}', 1
    )


def _options(objectives: dict[str, Any]) -> list[dict[str, str]]:
    return [{"label": o.label, "value": name} for name, o in objectives.items()]


def _cat_options() -> list[dict[str, str]]:
    return [{"label": label, "value": name} for name, (label, _) in CATEGORIES.items()]


#: Content types worth compressing (the full plotly.js is 4.8 MB as Dash serves it, 1.4 MB gzipped; our
#: partial one 1.6 MB, 0.5 MB gzipped).
_COMPRESSIBLE = ("application/javascript", "text/javascript", "application/json", "text/html", "text/css")


#: Paths whose responses never change for the same address: compressed once, kept.
_BUNDLE_PREFIXES = ("/_dash-component-suites/", "/" + PLOTLY_ROUTE)


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
        bundle = key.startswith(_BUNDLE_PREFIXES) and environ.get("REQUEST_METHOD") == "GET"
        if bundle and key in self._bundles:
            status, headers, body = self._bundles[key]
            etag = next((v for k, v in headers if k.lower() == "etag"), None)
            if etag is not None and etag in environ.get("HTTP_IF_NONE_MATCH", ""):
                # unversioned bundles (plotly.min.js, the async chunks) are revalidated: 304, no body
                start_response("304 NOT MODIFIED", [(k, v) for k, v in headers if k.lower() in ("etag", "vary")])
                return []
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
