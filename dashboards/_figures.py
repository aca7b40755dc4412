"""Plotly figures rendered from the records of ``_views`` (the only module that builds figures)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboards._views import AblationFacet, Axis, FrontData, HypervolumeCurve, Point, TrialDetail

#: Trace names the browser tests and the report's click handler look for.
FRONT_TRACE = "Pareto set"
STAIRCASE_TRACE = "Pareto front"
_PALETTE = qualitative.Plotly + qualitative.D3
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "pentagon", "hexagon", "triangle-down")
#: Above this many points the scatter is drawn with WebGL. Below it SVG is faster: a 5,000-trial page
#: drew in 1.6 s with SVG against 2.2 s with WebGL in headless Chromium on 2 cores (bench/dashboard.py).
WEBGL_FROM = 10_000


def _strings(values: Sequence[str]) -> np.ndarray:
    """Plotly validates a numpy string array several times faster than a list (5,000-trial studies)."""
    return np.array(values, dtype=str)


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
    ``symbol_by``, each study's staircase, and a ``Pareto set`` trace holding exactly the front."""
    if not data.points:
        return _message_figure("No trial to show yet.")
    scatter = go.Scattergl if len(data.points) > WEBGL_FROM else go.Scatter
    fig = go.Figure()
    symbols = _symbols([p.symbol_key for p in data.points])
    studies = list(data.fronts)
    by_study = _colours(studies)
    colours = by_study if data.overlay else _colours([p.color_key for p in data.points])

    def colour(p: Point) -> str:
        return colours[p.study] if data.overlay else colours[p.color_key]

    groups: dict[str, list[Point]] = {}
    for p in data.points:
        if not p.on_front:
            key = p.study if data.overlay else p.color_key
            groups.setdefault(key, []).append(p)
    for key in sorted(groups):
        members = groups[key]
        shade = colour(members[0])  # a group is one colour key (or one study): one colour
        fig.add_trace(
            scatter(
                x=np.array([p.x for p in members]),
                y=np.array([p.y for p in members]),
                mode="markers",
                name=html.escape(key),
                legendgroup=key,
                opacity=0.4,
                marker={
                    "size": 9,
                    "color": shade,
                    "symbol": _strings(
                        [symbols[p.symbol_key] if p.state == "COMPLETE" else "x-thin-open" for p in members]
                    ),
                    "line": {"width": 1, "color": shade},
                },
                customdata=_custom(members),
                hovertemplate=_hovertemplate(data),
            )
        )
    for study, front in data.fronts.items():
        if not front:
            continue
        suffix = f" · {html.escape(study)}" if data.overlay else ""
        xs, ys = _staircase(front)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=STAIRCASE_TRACE + suffix,
                line={"color": by_study[study] if data.overlay else "black", "dash": "dot", "width": 1.5},
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[p.x for p in front],
                y=[p.y for p in front],
                mode="markers",
                name=FRONT_TRACE + suffix,
                marker={
                    "size": 14,
                    "color": [colour(p) for p in front],
                    "symbol": [symbols[p.symbol_key] for p in front],
                    "line": {"width": 2, "color": "black"},
                },
                customdata=_custom(front),
                hovertemplate=_hovertemplate(data),
            )
        )
    for key, symbol in symbols.items():  # a legend entry per symbol, which the markers cannot give
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"{data.symbol_by}: {key}",
                marker={"symbol": symbol, "color": "#777", "size": 10},
                legendgroup=f"symbol-{key}",
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title=title or None,
        xaxis_title=data.x.label,
        yaxis_title=data.y.label,
        template="plotly_white",
        legend_title="study" if data.overlay else data.color_by,
        height=560,
        clickmode="event",
        uirevision="pareto",  # keep zoom while the live view refreshes
    )
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


def ablation_figure(facets: Sequence[AblationFacet]) -> go.Figure:
    """Box plots of validation Dice grouped by each architecture choice (2 × 2 panels)."""
    if not any(f.groups for f in facets):
        return _message_figure("No complete trial yet.", height=560)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[f"Dice by {f.title}" for f in facets])
    for i, facet in enumerate(facets):
        row, col = divmod(i, 2)
        for group, values in facet.groups.items():
            fig.add_trace(
                go.Box(
                    y=np.array(values),
                    name=group,
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    marker={"size": 4},
                    showlegend=False,
                    hovertemplate=f"{html.escape(group)}: %{{y:.4f}}<extra>n={len(values)}</extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
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
        dimensions.append(dim)
    colour = np.array(axes[-1].values)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={"color": colour, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "Dice"}},
        )
    )
    fig.update_layout(template="plotly_white", height=460, margin={"l": 80, "r": 60}, uirevision="parallel")
    return fig


def learning_curve_figure(detail: TrialDetail) -> go.Figure:
    if not detail.curves:
        return _message_figure(f"Trial {detail.number} recorded no learning curve.", height=300)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, values in detail.curves.items():
        ys = [None if math.isnan(v) else v for v in values]
        fig.add_trace(
            go.Scatter(x=list(detail.epochs), y=ys, mode="lines+markers", name=key),
            secondary_y=key == "loss",
        )
    fig.update_layout(
        title=f"Trial {detail.number}: learning curve", template="plotly_white", height=300, xaxis_title="epoch"
    )
    fig.update_yaxes(title_text="validation Dice", secondary_y=False)
    fig.update_yaxes(title_text="training loss", secondary_y=True)
    return fig
