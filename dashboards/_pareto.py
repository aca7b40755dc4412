"""The Pareto scatter: compute what it shows from trial records, then render it with Plotly."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io as pio

from studies import TrialRecord, complete_records, pareto_records, state_counts


@dataclass(frozen=True)
class ParetoPoint:
    number: int
    dice: float
    gflops: float
    params: int | None
    block: str
    label: str
    on_front: bool


@dataclass(frozen=True)
class ParetoPlotData:
    """Everything the Pareto figure shows, with no Plotly in it (so it is testable on its own)."""

    title: str
    points: tuple[ParetoPoint, ...]
    front: tuple[ParetoPoint, ...]  # sorted by GFLOPs: the staircase
    counts: dict[str, int]


def pareto_plot_data(title: str, records: Sequence[TrialRecord]) -> ParetoPlotData:
    """Collect complete trials as points and mark the Pareto set (max Dice, min GFLOPs)."""
    front_numbers = {r.number for r in pareto_records(records)}
    points = tuple(
        ParetoPoint(
            number=r.number,
            dice=float(r.dice or 0.0),
            gflops=float(r.gflops or 0.0),
            params=r.params,
            block=r.block,
            label=r.label,
            on_front=r.number in front_numbers,
        )
        for r in complete_records(records)
    )
    front = tuple(sorted((p for p in points if p.on_front), key=lambda p: (p.gflops, -p.dice)))
    return ParetoPlotData(title=title, points=points, front=front, counts=state_counts(records))


def _hover(p: ParetoPoint) -> str:
    params = f"{p.params:,}" if p.params is not None else "?"
    return (
        f"trial {p.number}<br>Dice {p.dice:.4f}<br>{p.gflops:.4f} GFLOPs<br>{params} params<br>{html.escape(p.label)}"
    )


def pareto_figure(data: ParetoPlotData) -> go.Figure:
    """Dice vs GFLOPs: dominated trials faded, a colour per attention block, the front as a staircase."""
    fig = go.Figure()
    blocks = sorted({p.block for p in data.points})
    for block in blocks:
        members = [p for p in data.points if p.block == block and not p.on_front]
        if not members:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p.gflops for p in members],
                y=[p.dice for p in members],
                mode="markers",
                name=f"{block}",
                legendgroup=block,
                opacity=0.45,
                marker={"size": 9},
                customdata=[p.number for p in members],
                hovertext=[_hover(p) for p in members],
                hoverinfo="text",
            )
        )
    front = list(data.front)
    if front:
        xs: list[float] = []
        ys: list[float] = []
        for p in front:  # staircase: better Dice needs more GFLOPs
            if xs:
                xs.append(p.gflops)
                ys.append(ys[-1])
            xs.append(p.gflops)
            ys.append(p.dice)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name="Pareto front",
                line={"shape": "linear", "color": "black", "dash": "dot"},
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[p.gflops for p in front],
                y=[p.dice for p in front],
                mode="markers",
                name="Pareto set",
                marker={
                    "size": 13,
                    "symbol": "diamond",
                    "color": "crimson",
                    "line": {"width": 1, "color": "black"},
                },
                customdata=[p.number for p in front],
                hovertext=[_hover(p) for p in front],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=data.title,
        xaxis_title="GFLOPs (forward, batch 1)",
        yaxis_title="validation Dice",
        template="plotly_white",
        legend_title="attention block",
        height=560,
    )
    return fig


def _table(points: Sequence[ParetoPoint]) -> str:
    rows = "".join(
        f"<tr><td>{p.number}</td><td>{p.dice:.4f}</td><td>{p.gflops:.4f}</td>"
        f"<td>{p.params if p.params is not None else ''}</td>"
        f"<td><code>{html.escape(p.label)}</code></td></tr>"
        for p in points
    )
    return (
        "<table><thead><tr><th>trial</th><th>Dice</th><th>GFLOPs</th><th>params</th><th>architecture</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def report_html(data: ParetoPlotData) -> str:
    """One self-contained HTML page (plotly.js inlined, works offline) with the figure and the front."""
    figure = pio.to_html(pareto_figure(data), include_plotlyjs=True, full_html=False, div_id="pareto")
    counts = ", ".join(f"{state}: {n}" for state, n in data.counts.items()) or "no trials"
    title = html.escape(data.title)
    meta = json.dumps({"pareto_trials": [p.number for p in data.front]})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;}} table{{border-collapse:collapse;}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;}}</style>
<script type="application/json" id="nas-report-meta">{meta}</script></head>
<body><h1>{title}</h1><p>Trials by state: {counts}. Pareto set: {len(data.front)} of
{len(data.points)} complete trials.</p>
{figure}
<h2>Pareto set</h2>{_table(data.front)}
</body></html>
"""
