"""Plotly figures rendered from the records of ``_views`` (the only module that builds figures)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboards._views import (
    CATEGORIES,
    AblationFacet,
    Axis,
    CurveSet,
    FrontData,
    HypervolumeCurve,
    ObjectiveHistory,
    ParamImportance,
    Point,
    TrialDetail,
)

#: Trace names the browser tests and the report's click handler look for.
FRONT_TRACE = "Pareto set"
STAIRCASE_TRACE = "Pareto front"
#: The ring beneath each front member (no hover): its legend entry stands for the front.
FRONT_RING = "on the Pareto front"
#: The seeds' spread of each architecture with two or more runs: mean and 95% t-interval of Dice.
INTERVAL_TRACE = "architecture mean, 95% interval over seeds"
#: Every clickable marker of the scatter has this size (see ``pareto_figure`` for why).
MARKER_SIZE = 9
RING_SIZE = 17
#: The scatter's fixed height in px: the page beside and below it never moves when a point is clicked.
PARETO_HEIGHT = 560
#: States drawn with their symbol: they have objective values (the others are an ×).
_COMPLETE_LIKE = ("COMPLETE", "REUSED")
_PALETTE = qualitative.Plotly + qualitative.D3
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "pentagon", "hexagon", "triangle-down")
#: Above this many points the scatter is drawn with WebGL. Below it SVG is faster: a 5,000-trial page
#: drew in 1.6 s with SVG against 2.2 s with WebGL in headless Chromium on 2 cores (bench/dashboard.py).
WEBGL_FROM = 10_000


def _custom(points: Sequence[Point]) -> np.ndarray:
    """``[study, trial number, state, label]`` per point: what a click hands back and the hover shows."""
    out = np.empty((len(points), 4), dtype=object)
    out[:, 0] = [html.escape(p.study) for p in points]
    out[:, 1] = [p.number for p in points]
    out[:, 2] = ["" if p.state == "COMPLETE" else f" ({p.state})" for p in points]
    out[:, 3] = [html.escape(p.label) for p in points]
    return out


def _colours(keys: Sequence[str]) -> dict[str, str]:
    return {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(sorted(set(keys)))}


def _symbols(keys: Sequence[str]) -> dict[str, str]:
    return {k: _SYMBOLS[i % len(_SYMBOLS)] for i, k in enumerate(sorted(set(keys)))}


def _hovertemplate(data: FrontData) -> str:
    """One template per trace rather than a text per point: a third of the bytes for 5,000 trials."""
    study = "%{customdata[0]} · " if data.overlay else ""
    return (
        f"{study}trial %{{customdata[1]}}%{{customdata[2]}}<br>{data.y.label}: %{{y:.4g}}"
        f"<br>{data.x.label}: %{{x:.4g}}<br>%{{customdata[3]}}<extra></extra>"
    )


def _message_figure(text: str, height: int = 420) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(template="plotly_white", height=height, xaxis_visible=False, yaxis_visible=False)
    return fig


def _staircase(front: Sequence[Point]) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for p in front:  # sorted by x: a horizontal then a vertical step to each next point
        if xs:
            xs.append(p.x)
            ys.append(ys[-1])
        xs.append(p.x)
        ys.append(p.y)
    return xs, ys


def pareto_figure(data: FrontData, *, title: str = "") -> go.Figure:
    """The front: dominated trials faded, colour by ``color_by`` (by study when overlaid), symbol by
    ``symbol_by``, each study's staircase, and a ``Pareto set`` trace holding exactly the front.

    Which marker a hover or click picks is Plotly's: the nearest centre, where a cursor inside a
    marker counts as ``1 - 3 / radius`` and equal distances go to the later (upper) trace. Markers
    of different sizes therefore steal clicks from each other (a small dominated marker under a big
    front marker wins), so every clickable marker has the same size; the front is drawn last and
    on top (it wins ties: the marker under the cursor), its emphasis is a ring drawn beneath
    everything that takes no hover.
    """
    if not data.points:
        return _message_figure("No trial to show yet.")
    scatter = go.Scattergl if len(data.points) > WEBGL_FROM else go.Scatter
    fig = go.Figure()
    symbols = _symbols([p.symbol_key for p in data.points])
    studies = list(data.fronts)
    by_study = _colours(studies)
    colours = by_study if data.overlay else _colours(data.color_keys or [p.color_key for p in data.points])

    def colour(p: Point) -> str:
        return colours[p.study] if data.overlay else colours[p.color_key]

    def symbol(p: Point) -> str:
        return symbols[p.symbol_key] if p.state in _COMPLETE_LIKE else "x-thin-open"

    # one trace per colour key (or study) and symbol: a symbol per trace rather than per point is
    # ~2x faster to draw (50,000 trials in WebGL: 1.9 -> 1.1 s) and to build (plotly validates every
    # symbol of an array); the × of trials without objective values is all outline
    groups: dict[tuple[str, str], list[Point]] = {}
    for p in data.points:
        if not p.on_front:
            groups.setdefault((p.study if data.overlay else p.color_key, symbol(p)), []).append(p)
    keys = sorted({p.study if data.overlay else p.color_key for p in data.points})
    for key, marker_symbol in sorted(groups):
        members = groups[key, marker_symbol]
        filled = marker_symbol != "x-thin-open"
        shade = colour(members[0])  # a group is one colour key (or one study): one colour
        fig.add_trace(
            scatter(
                x=np.array([p.x for p in members]),
                y=np.array([p.y for p in members]),
                mode="markers",
                name=html.escape(key),
                legendgroup=key,
                showlegend=False,  # the legend-only entries below carry the swatches
                opacity=0.4,
                marker={
                    "size": MARKER_SIZE,
                    "color": shade,
                    "symbol": marker_symbol,
                    # no outline: a stroke per point was a third of the time a 5,000-trial front took
                    # to draw in headless Chromium (bench/dashboard.py); the size, and so which marker
                    # a click picks, is the same as every other clickable marker's
                    "line": {"width": 0} if filled else {"width": 1, "color": shade},
                },
                customdata=_custom(members),
                hovertemplate=_hovertemplate(data),
            )
        )
    for study, bars in data.bars.items():  # seeds' spread, beneath every clickable marker
        suffix = f" · {html.escape(study)}" if data.overlay else ""
        fig.add_trace(
            go.Scatter(
                x=[b.x for b in bars],
                y=[b.mean for b in bars],
                mode="markers",
                name=INTERVAL_TRACE + suffix,
                legendgroup=f"interval{suffix}",
                showlegend=True,
                marker={"symbol": "line-ew-open", "size": 16, "color": "black", "line": {"width": 2}},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [b.high - b.mean for b in bars],
                    "arrayminus": [b.mean - b.low for b in bars],
                    "color": "rgba(0,0,0,0.55)",
                    "thickness": 1.5,
                    "width": 5,
                },
                hoverinfo="skip",  # takes no hover or click: the trial markers do
                zorder=-1,
            )
        )
    fronts = [(study, front) for study, front in data.fronts.items() if front]
    for study, front in fronts:
        suffix = f" · {html.escape(study)}" if data.overlay else ""
        xs, ys = _staircase(front)
        fig.add_trace(
            go.Scatter(
                x=[p.x for p in front],
                y=[p.y for p in front],
                mode="markers",
                name=FRONT_RING + suffix,
                legendgroup=f"front{suffix}",
                showlegend=True,
                marker={"size": RING_SIZE, "color": "rgba(255,215,0,0.55)", "line": {"width": 1.5, "color": "black"}},
                hoverinfo="skip",
                zorder=-1,  # beneath every clickable marker: the ring never hides the one under the cursor
            )
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=STAIRCASE_TRACE + suffix,
                line={"color": by_study[study] if data.overlay else "black", "dash": "dot", "width": 1.5},
                hoverinfo="skip",
                zorder=-1,
            )
        )
    for key in keys:  # one swatch per colour, whether or not any of its trials is dominated
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=html.escape(key),
                legendgroup=key,
                marker={"symbol": "circle", "color": by_study[key] if data.overlay else colours[key], "size": 10},
                hoverinfo="skip",
            )
        )
    for key, sym in symbols.items():  # a legend entry per symbol, which the markers cannot give
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"{data.symbol_by}: {html.escape(key)}",
                marker={"symbol": sym, "color": "#777", "size": 10},
                legendgroup=f"symbol-{key}",
                hoverinfo="skip",
            )
        )
    if any(p.state not in _COMPLETE_LIKE for p in data.points):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="not complete (no objective values)",
                marker={"symbol": "x-thin-open", "color": "#777", "size": 10, "line": {"width": 2}},
                hoverinfo="skip",
            )
        )
    for study, front in fronts:  # last: the front wins Plotly's ties and is drawn on top
        suffix = f" · {html.escape(study)}" if data.overlay else ""
        fig.add_trace(
            go.Scatter(
                x=[p.x for p in front],
                y=[p.y for p in front],
                mode="markers",
                name=FRONT_TRACE + suffix,
                legendgroup=f"front{suffix}",
                showlegend=False,  # the ring's entry stands for it: these markers have many colours
                marker={
                    "size": MARKER_SIZE,
                    "color": [colour(p) for p in front],
                    "symbol": [symbols[p.symbol_key] for p in front],
                    "line": {"width": 1.5, "color": "black"},
                },
                customdata=_custom(front),
                hovertemplate=_hovertemplate(data),
                zorder=1,
            )
        )
    for study, number in data.knees.items():
        knee = next((p for p in data.fronts[study] if p.number == number), None)
        if knee is not None:
            fig.add_annotation(
                x=knee.x,
                y=knee.y,
                text=f"knee: trial {number}" + (f" · {html.escape(study)}" if data.overlay else ""),
                hovertext="the front's knee: what nas export --knee takes",
                showarrow=True,
                arrowhead=2,
                standoff=RING_SIZE / 2 + 2,  # the arrow stops short of the marker: it never takes its click
                ax=40,
                ay=40,
                font={"size": 11},
                bgcolor="rgba(255,255,255,0.8)",
            )
    fig.update_layout(
        title=title or None,
        xaxis_title=data.x.label,
        yaxis_title=data.y.label,
        template="plotly_white",
        legend_title="study" if data.overlay else CATEGORIES[data.color_by][0],
        height=PARETO_HEIGHT,
        clickmode="event",
        hovermode="closest",
        uirevision="pareto",  # keep zoom while the live view refreshes
    )
    if data.bars:
        # The axis spans the trials, not the intervals: an interval over two seeds is wide (t(0.975, 1)
        # = 12.7) and would squeeze the markers together; a bar longer than the axis runs off its edge.
        ys = [p.y for p in data.points]
        pad = 0.06 * ((max(ys) - min(ys)) or abs(max(ys)) or 1.0)
        fig.update_yaxes(range=[min(ys) - pad, max(ys) + pad])
    return fig


def hypervolume_figure(curves: Sequence[HypervolumeCurve], reference: tuple[float, float], ylabel: str) -> go.Figure:
    if not any(c.numbers for c in curves):
        return _message_figure("No trial yet.", height=320)
    fig = go.Figure()
    for curve in curves:
        fig.add_trace(go.Scatter(x=np.array(curve.numbers), y=np.array(curve.values), mode="lines", name=curve.study))
    fig.update_layout(
        title=f"Hypervolume over trials (reference {reference[0]:.4g}, {reference[1]:.4g})",
        xaxis_title="trial number",
        yaxis_title=ylabel,
        template="plotly_white",
        height=320,
        uirevision="hv",
    )
    return fig


def ablation_figure(facets: Sequence[AblationFacet], *, colours: Sequence[str] = ()) -> go.Figure:
    """Box plots of validation Dice grouped by each architecture choice (2 × 2 panels), each group
    labelled with its n. ``colours``: the Pareto plot's colour keys (``FrontData.color_keys``), so
    that an attention type has the same colour in both figures; other facets are grey."""
    if not any(f.groups for f in facets):
        return _message_figure("No complete trial yet.", height=560)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[f"Dice by {f.title}" for f in facets])
    by_type = _colours(list(colours) or list(facets[0].groups))
    for i, facet in enumerate(facets):
        row, col = divmod(i, 2)
        for group, values in facet.groups.items():
            shade = by_type.get(group, "#555") if i == 0 else "#555"
            fig.add_trace(
                go.Box(
                    y=np.array(values),
                    name=f"{html.escape(group)} (n={len(values)})",
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    marker={"size": 4, "color": shade},
                    line={"color": shade},
                    showlegend=False,
                    hovertemplate=f"{html.escape(group)}: %{{y:.4f}}<extra>n={len(values)}</extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
        fig.update_yaxes(title_text="validation Dice", row=row + 1, col=col + 1)
    fig.update_layout(template="plotly_white", height=620, uirevision="ablation")
    return fig


def parallel_figure(axes: Sequence[Axis]) -> go.Figure:
    if not axes or not axes[0].values:
        return _message_figure("No complete trial yet.", height=420)
    dimensions = []
    for axis in axes:
        dim: dict[str, object] = {"label": axis.label, "values": np.array(axis.values)}
        if axis.ticks:
            dim["tickvals"] = list(range(len(axis.ticks)))
            dim["ticktext"] = list(axis.ticks)
        elif axis.values and all(float(v).is_integer() for v in axis.values) and len(set(axis.values)) <= 12:
            dim["tickvals"] = sorted(set(axis.values))  # levels, widths: integers, no fractional ticks
        dimensions.append(dim)
    colour = np.array(axes[-1].values)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={"color": colour, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "Dice"}},
        )
    )
    # Plotly writes an axis's tick labels to its left, and the first axis stands at the plot's left
    # edge: the left margin holds its longest name (cbam_channel+cbam_spatial), or the label is cut off.
    longest = max((len(t) for t in axes[0].ticks), default=6)
    fig.update_layout(
        template="plotly_white", height=460, margin={"l": max(80, 20 + 7 * longest), "r": 110}, uirevision="parallel"
    )
    return fig


_CURVE_NAMES = {"val_dice": "validation Dice", "loss": "training loss"}


def learning_curve_figure(detail: TrialDetail) -> go.Figure:
    if not detail.curves:
        return _message_figure(f"Trial {detail.number} recorded no learning curve.", height=300)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, values in detail.curves.items():
        ys = [None if math.isnan(v) else v for v in values]
        fig.add_trace(
            go.Scatter(x=list(detail.epochs), y=ys, mode="lines+markers", name=_CURVE_NAMES.get(key, key)),
            secondary_y=key == "loss",
        )
    fig.update_layout(
        title=f"Trial {detail.number}: learning curve",
        template="plotly_white",
        height=300,
        xaxis_title="epoch",
        legend={"orientation": "h", "x": 0, "y": -0.25},  # below the plot: clear of both axis titles
        margin={"t": 40, "b": 70},
    )
    fig.update_yaxes(title_text="validation Dice", secondary_y=False)
    fig.update_yaxes(title_text="training loss", secondary_y=True)
    return fig


#: Trace names of the history figure (tests look for them).
HISTORY_TRIALS = "trials"
HISTORY_BEST = "best so far"


def history_figure(histories: Sequence[ObjectiveHistory]) -> go.Figure:
    """One panel per objective of the study: each COMPLETE trial's value by trial number, and the
    best value so far as a step line."""
    if not any(h.numbers for h in histories):
        return _message_figure("No complete trial yet.", height=320)
    rows = len(histories)
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12 / max(rows - 1, 1),
        subplot_titles=[f"{h.label} ({'higher' if h.maximize else 'lower'} is better)" for h in histories],
    )
    for i, h in enumerate(histories, start=1):
        fig.add_trace(
            go.Scatter(
                x=np.array(h.numbers),
                y=np.array(h.values),
                mode="markers",
                name=HISTORY_TRIALS,
                legendgroup=HISTORY_TRIALS,
                showlegend=i == 1,
                marker={"size": 6, "color": "#1f77b4", "opacity": 0.6},
                meta=h.name,
                hovertemplate=f"trial %{{x}}<br>{html.escape(h.label)}: %{{y:.4g}}<extra></extra>",
            ),
            row=i,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=np.array(h.numbers),
                y=np.array(h.best),
                mode="lines",
                line={"shape": "hv", "color": "#d62728", "width": 2},
                name=HISTORY_BEST,
                legendgroup=HISTORY_BEST,
                showlegend=i == 1,
                meta=h.name,
                hovertemplate="best up to trial %{x}: %{y:.4g}<extra></extra>",
            ),
            row=i,
            col=1,
        )
        fig.update_yaxes(title_text=html.escape(h.label), row=i, col=1)
    fig.update_xaxes(title_text="trial number", row=rows, col=1)
    fig.update_layout(template="plotly_white", height=300 * rows + 60, uirevision="history")
    return fig


def importance_figure(importances: Sequence[ParamImportance]) -> go.Figure:
    """One bar chart per objective: the share of its variance each architecture choice explains."""
    if not importances:
        return _message_figure("No objective.", height=320)
    fig = make_subplots(
        rows=1,
        cols=len(importances),
        subplot_titles=[f"{html.escape(p.label)} (n={p.n})" for p in importances],
        horizontal_spacing=0.25,
    )
    for i, p in enumerate(importances, start=1):
        if not p.enough or not p.importances:
            text = (
                f"needs ≥ {p.needed} complete trials (has {p.n})" if not p.enough else "no architecture choice varies"
            )
            fig.add_annotation(
                text=text,
                showarrow=False,
                x=0.5,
                y=0.5,
                xref=f"x{'' if i == 1 else i} domain",
                yref=f"y{'' if i == 1 else i} domain",
            )
            fig.update_xaxes(visible=False, row=1, col=i)
            fig.update_yaxes(visible=False, row=1, col=i)
            continue
        shown = list(reversed(p.importances))  # largest on top
        fig.add_trace(
            go.Bar(
                x=[v for _, v in shown],
                y=[html.escape(c) for c, _ in shown],
                orientation="h",
                name=html.escape(p.label),
                meta=p.objective,
                showlegend=False,
                marker={"color": "#1f77b4"},
                hovertemplate="%{y}: %{x:.3f} of the variance<extra></extra>",
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="share of variance explained (ε²)", rangemode="tozero", row=1, col=i)
    longest = max((len(c) for p in importances for c, _ in p.importances), default=10)
    fig.update_layout(
        template="plotly_white",
        height=max(320, 60 + 22 * max((len(p.importances) for p in importances), default=0)),
        margin={"l": 20 + 7 * longest},
        uirevision="importance",
    )
    return fig


def curves_figure(curves: CurveSet) -> go.Figure:
    """Validation Dice per epoch of several trials, one line each, named by trial and architecture."""
    if not curves.curves:
        text = "Tick trials in the table to compare their learning curves."
        if curves.missing:
            text = "No validation Dice recorded for trial " + ", ".join(str(n) for n in curves.missing) + "."
        return _message_figure(text, height=360)
    fig = go.Figure()
    for name, epochs, dice in curves.curves:
        fig.add_trace(go.Scatter(x=list(epochs), y=list(dice), mode="lines+markers", name=html.escape(name)))
    note = ""
    if curves.missing:
        note = " (no curve recorded: trial " + ", ".join(str(n) for n in curves.missing) + ")"
    fig.update_layout(
        title=f"Learning curves{note}",
        template="plotly_white",
        height=360,
        xaxis_title="epoch",
        yaxis_title="validation Dice",
        legend={"orientation": "h", "x": 0, "y": -0.25},
        margin={"t": 40, "b": 90},
    )
    return fig
