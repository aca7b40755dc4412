"""``nas report``: the dashboard's figures for one study in a single self-contained, offline HTML file."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import plotly.io as pio

from dashboards._diagram import diagram_data, diagram_svg
from dashboards._figures import (
    FRONT_TRACE,
    ablation_figure,
    hypervolume_figure,
    parallel_figure,
    pareto_figure,
)
from dashboards._views import (
    OBJECTIVES,
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
from studies import TrialRecord, complete_records

#: Diagrams are embedded for the Pareto set plus the best trials, up to this many in all.
MAX_DIAGRAMS = 200

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
#detail{border:1px solid #bbb;border-radius:6px;padding:1em;margin:1em 0;min-height:3em}
code{background:#f3f3f3;padding:2px 4px}"""

_CLICK_JS = """
(function(){
  var details = JSON.parse(document.getElementById('nas-details').textContent);
  var box = document.getElementById('detail');
  function esc(s){var d=document.createElement('div');d.textContent=String(s);return d.innerHTML;}
  function show(number){
    var d = details[String(number)];
    if(!d){box.innerHTML='<p>Trial '+esc(number)+': no details recorded.</p>';return;}
    var rows = d.metrics.map(function(m){return '<tr><th>'+esc(m[0])+'</th><td>'+esc(m[1])+'</td></tr>';}).join('');
    box.innerHTML = '<h3 id="detail-title">Trial '+esc(number)+': <code>'+esc(d.label)+'</code></h3>'
      + (d.svg ? '<div class="diagram">'+d.svg+'</div>' : '<p>(diagram not embedded for this trial)</p>')
      + '<table>'+rows+'</table><p>Export it with: <code class="export">'+esc(d.export)+'</code></p>';
  }
  window.addEventListener('load', function(){
    document.getElementById('pareto').on('plotly_click', function(ev){
      if(ev.points.length && ev.points[0].customdata){ show(ev.points[0].customdata[1]); }
    });
  });
})();
"""


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' can end it or open a comment."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _figure_html(fig: Any, div_id: str, *, first: bool) -> str:
    return str(pio.to_html(fig, include_plotlyjs=first, full_html=False, div_id=div_id, config={"responsive": True}))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _details(study: str, records: Sequence[TrialRecord], storage: str, front: set[int]) -> dict[str, Any]:
    done = complete_records(records)
    ranked = sorted(done, key=lambda r: (r.number not in front, -(r.dice or 0.0)))
    with_svg = {r.number for r in ranked[:MAX_DIAGRAMS]}
    out: dict[str, Any] = {}
    for r in done:
        detail = trial_detail(study, r, storage)
        svg = diagram_svg(diagram_data(r.spec)) if r.spec and r.number in with_svg else None
        out[str(r.number)] = {"label": r.label, "metrics": detail.metrics, "export": detail.export_command, "svg": svg}
    return out


def report_html(study: str, records: Sequence[TrialRecord], *, storage: str) -> str:
    """One page: summary, Pareto front (click a point for its architecture), hypervolume, ablation,
    parallel coordinates and the trials table. plotly.js is inlined, so it works offline."""
    title = f"Study {study}"
    summary = study_summary(study, records)
    reason = empty_reason(study, records)
    head = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style>"
    )
    intro = (
        f"<h1>{html.escape(title)}</h1><p>{summary.trials} trials: {html.escape(summary.counts_text)}. "
        f"Pareto set: {summary.pareto_size} of {len(complete_records(records))} complete trials; "
        f"hypervolume {summary.hypervolume:.4g} (Dice ≥ {summary.reference[1]:g}, "
        f"GFLOPs ≤ {summary.reference[0]:.4g}).</p>"
    )
    if reason is not None:
        meta = json.dumps({"pareto_trials": [], "empty": True})
        return (
            f'{head}<script type="application/json" id="nas-report-meta">{meta}</script></head><body>{intro}'
            f'<p class="empty">{html.escape(reason)}</p>{_table(trial_rows(records), ["trial", "state", "error"])}'
            "</body></html>\n"
        )
    x, y = OBJECTIVES["gflops"], OBJECTIVES["dice"]
    data = front_data({study: records})
    front = data.fronts[study]
    reference = reference_point({study: records}, x, y)
    figures = [
        ("pareto", pareto_figure(data, title="Validation Dice vs GFLOPs")),
        ("hypervolume", hypervolume_figure([hypervolume_curve(study, records, x, y, reference)], reference, "area")),
        ("ablation", ablation_figure(ablation_data(records))),
        ("parallel", parallel_figure(parallel_data(records))),
    ]
    body = "".join(_figure_html(fig, div, first=i == 0) for i, (div, fig) in enumerate(figures))
    meta = _script_json({"pareto_trials": [p.number for p in front], "front_trace": FRONT_TRACE})
    details = _script_json(_details(study, records, storage, {p.number for p in front}))
    front_rows = [row for row in trial_rows(records, ("COMPLETE",)) if row["trial"] in {p.number for p in front}]
    columns = ["trial", "state", "dice", "gflops", "params", "memory_mb", "train_s", "architecture", "error"]
    return (
        f'{head}<script type="application/json" id="nas-report-meta">{meta}</script>'
        f'<script type="application/json" id="nas-details">{details}</script></head><body>{intro}'
        f'<div id="detail"><p>Click a point of the front to see its architecture and export command.</p></div>'
        f"{body}<h2>Pareto set</h2>{_table(front_rows, columns)}"
        f"<h2>All trials</h2>{_table(trial_rows(records), columns)}"
        f"<script>{_CLICK_JS}</script></body></html>\n"
    )
