"""``nas report``: the dashboard's figures for one study in a single self-contained, offline HTML file."""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import re
from collections.abc import Sequence
from typing import Any

import plotly.io as pio

from dashboards._diagram import diagram_data, diagram_svg
from dashboards._figures import (
    FRONT_TRACE,
    PARETO_HEIGHT,
    ablation_figure,
    history_figure,
    hypervolume_figure,
    importance_figure,
    parallel_figure,
    pareto_figure,
)
from dashboards._plotlyjs import plotly_js
from dashboards._views import (
    OBJECTIVES,
    ablation_data,
    empty_reason,
    export_command,
    front_data,
    hypervolume_curve,
    objective_history,
    parallel_data,
    param_importance,
    study_objective_names,
    study_summary,
    trial_detail,
    trial_rows,
)
from studies import CONFIRM_STAGE, TrialRecord, complete_records, verdict

#: Diagrams are embedded for the Pareto set plus the best trials, up to this many in all.
MAX_DIAGRAMS = 200

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
#front-row{display:flex;align-items:flex-start;gap:12px}
#pareto{flex:3 1 600px;height:%(h)dpx}
#detail{flex:2 1 360px;height:%(h)dpx;overflow-y:auto;box-sizing:border-box;border:1px solid #bbb;
border-radius:6px;padding:0 1em}
code{background:#f3f3f3;padding:2px 4px}button{margin-left:6px}"""

#: The page's script: unpack plotly.js and the data (gzip, base64: a third of the bytes), draw the
#: front first and the other figures when they scroll into view, show a trial on click, and page,
#: filter and download the trials table.
_PAGE_JS = r"""
(function(){
  function esc(s){var d=document.createElement('div');d.textContent=String(s);return d.innerHTML;}
  async function unpack(id){
    var text = atob(document.getElementById(id).textContent.trim());
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return await new Response(stream).text();
  }
  var data = null, box = document.getElementById('detail');
  function show(number){
    var d = data.details[String(number)], row = data.rows.find(function(r){return r[0] === number;});
    if(!d && row){d = {label: row[7], metrics: data.columns.slice(2, 7).map(function(c, i){
        return [c, row[i + 2] === null ? '—' : String(row[i + 2])];}),
      export: row[1] === 'COMPLETE' ? data.export_template.split('{N}').join(String(number)) : '', svg: null};}
    if(!d){box.innerHTML='<p>Trial '+esc(number)+': no details recorded.</p>';return;}
    var rows = d.metrics.map(function(m){return '<tr><th>'+esc(m[0])+'</th><td>'+esc(m[1])+'</td></tr>';}).join('');
    box.innerHTML = '<h3 id="detail-title">Trial '+esc(number)+': <code>'+esc(d.label)+'</code></h3>'
      + (d.export ? '<p>Export it with: <code class="export" id="export-command">'+esc(d.export)+'</code>'
         + '<button id="copy-export" type="button">copy</button></p>' : '')
      + (d.svg ? '<div class="diagram">'+d.svg+'</div>' : '<p>(diagram not embedded for this trial)</p>')
      + '<table>'+rows+'</table>';
    var copy = document.getElementById('copy-export');
    if (copy) copy.onclick = function(){
      navigator.clipboard.writeText(d.export).then(function(){copy.textContent='copied';},
        function(){copy.textContent='select the command and copy it';});
    };
  }
  var page = 0, PAGE = 50;
  function shownRows(){
    var state = document.getElementById('state-filter').value;
    return data.rows.filter(function(r){return !state || r[1] === state;});
  }
  function drawTable(){
    var rows = shownRows(), table = document.getElementById('all-trials');
    page = Math.max(0, Math.min(page, Math.ceil(rows.length / PAGE) - 1));
    table.tBodies[0].innerHTML = rows.slice(page * PAGE, page * PAGE + PAGE).map(function(r){
      return '<tr data-trial="'+r[0]+'">'
        + r.map(function(v){return '<td>'+esc(v === null ? '' : v)+'</td>';}).join('') + '</tr>';
    }).join('');
    document.getElementById('table-page').textContent = rows.length ? ('rows ' + (page * PAGE + 1) + '–'
      + Math.min(rows.length, page * PAGE + PAGE) + ' of ' + rows.length) : 'no rows';
  }
  function csv(){
    var lines = [data.columns].concat(shownRows()).map(function(r){return r.map(function(v){
      v = v === null ? '' : String(v); return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;}).join(',');});
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], {type: 'text/csv'}));
    a.download = data.csv_name; a.click();
  }
  async function start(){
    var script = document.createElement('script');
    script.textContent = await unpack('nas-plotly');
    document.head.appendChild(script);
    data = JSON.parse(await unpack('nas-data'));
    var config = {responsive: true, displaylogo: false};
    var front = data.figures.pareto;
    await Plotly.newPlot('pareto', front.data, front.layout, config);
    document.getElementById('pareto').on('plotly_click', function(ev){
      if(ev.points.length && ev.points[0].customdata){ show(ev.points[0].customdata[1]); }
    });
    var lazy = new IntersectionObserver(function(entries){
      entries.forEach(function(e){
        if (!e.isIntersecting) return;
        lazy.unobserve(e.target);
        var f = data.figures[e.target.id];
        Plotly.newPlot(e.target, f.data, f.layout, config).then(function(){e.target.classList.remove('lazy');});
      });
    }, {rootMargin: '200px'});
    document.querySelectorAll('.lazy').forEach(function(e){lazy.observe(e);});
    document.getElementById('all-trials').dataset.rows = String(data.rows.length);
    document.getElementById('state-filter').onchange = function(){page = 0; drawTable();};
    document.getElementById('prev-page').onclick = function(){page--; drawTable();};
    document.getElementById('next-page').onclick = function(){page++; drawTable();};
    document.getElementById('csv').onclick = csv;
    document.getElementById('all-trials').tBodies[0].onclick = function(ev){
      var tr = ev.target.closest('tr'); if (tr) { show(Number(tr.dataset.trial)); box.scrollIntoView(); }
    };
    drawTable();
  }
  start().catch(function(e){ document.getElementById('detail').textContent = 'The report could not load: ' + e; });
})();
"""
_STYLE = _STYLE % {"h": PARETO_HEIGHT}
_COLUMNS = ("trial", "state", "dice", "gflops", "params", "memory_mb", "train_s", "architecture", "error")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' can end it or open a comment."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _packed(text: str) -> str:
    """gzip, then base64: plotly.js to a third of its bytes, the data to a tenth."""
    return base64.b64encode(gzip.compress(text.encode(), compresslevel=9, mtime=0)).decode("ascii")


@functools.cache
def _packed_plotly() -> str:
    return _packed(plotly_js().source.decode())


def unpack_report_data(page: str) -> dict[str, Any]:
    """The data a report page carries (figures, trial details, table rows): for tests and tools."""
    match = re.search(r'<script type="application/octet-stream" id="nas-data">(.*?)</script>', page, re.S)
    if match is None:
        raise ValueError("not a report page of this version: it has no nas-data block")
    value: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(match.group(1))))
    return value


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
    """Full details (metrics, diagram) of the front and the best trials; the page builds the others'
    from their table row, so a 5,000-trial report does not carry 5,000 metric tables."""
    done = complete_records(records)
    ranked = sorted(done, key=lambda r: (r.number not in front, -(r.dice or 0.0)))
    out: dict[str, Any] = {}
    for r in ranked[:MAX_DIAGRAMS]:
        detail = trial_detail(study, r, storage)
        svg = diagram_svg(diagram_data(r.spec)) if r.spec else None
        out[str(r.number)] = {"label": r.label, "metrics": detail.metrics, "export": detail.export_command, "svg": svg}
    return out


def verdict_html(records: Sequence[TrialRecord]) -> str:
    """The front over architectures (``studies.verdict``): Dice as mean ± sd with its 95% interval
    and n, ties, what the attention bought over no-attention twins, and the fidelity; empty when
    no trial completed."""
    result = verdict(records)
    if not result.front:
        return ""
    rows = []
    for a in result.front:
        interval, note = a.interval, result.note(a)
        rows.append(
            {
                "trials": ", ".join(str(t) for t in a.trials),
                "Dice mean": f"{a.mean:.4f}",
                "sd": "" if a.sd is None else f"{a.sd:.4f}",
                "95% interval": "" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]",
                "n": a.n,
                "GFLOPs": "" if a.gflops is None else f"{a.gflops:.4g}",
                "architecture": a.label,
                "verdict": note,
            }
        )
    where = (
        "confirmed: front members and their no-attention twins trained again with fresh seeds"
        if result.stage == CONFIRM_STAGE
        else "search stage"
    )
    out = f"<h2>Front over architectures</h2><p>{len(result.front)} of {len(result.architectures)}; {where}. "
    out += (
        "Dice is the mean over an architecture's runs with a 95% Student-t interval; a member whose "
        "interval overlaps a cheaper member's is tied with it.</p>"
    )
    out += _table(rows, list(rows[0]))
    if result.twins:
        items = "".join(
            f"<li>{html.escape(t.member.label)}: {t.difference:+.4f}"
            + ("" if t.interval is None else f" [{t.interval[0]:+.4f}, {t.interval[1]:+.4f}]")
            + f" vs {html.escape(t.twin.label)} ({t.resolved})</li>"
            for t in result.twins
        )
        out += f"<p>What the attention bought (member − its no-attention twin, Welch 95% interval):</p><ul>{items}</ul>"
    if result.fidelity is not None:
        out += (
            f'<p id="fidelity">Fidelity: Spearman ρ {result.fidelity:+.2f} between the search\'s and the confirm '
            f"stage's Dice ranking of {result.fidelity_pairs} architectures.</p>"
        )
    return out


def report_html(
    study: str, records: Sequence[TrialRecord], *, storage: str, reference: tuple[float, float] | None = None
) -> str:
    """One page: summary, Pareto front (click a point for its architecture), hypervolume, each
    objective's history with the best so far, ablation, parameter importance, parallel coordinates,
    the front over architectures and the trials table. plotly.js is inlined
    (compressed), so it works offline. ``reference``: the study's fixed hypervolume reference
    (GFLOPs, Dice), ``studies.hv_reference``."""
    title = f"Study {study}"
    summary = study_summary(study, records, reference)
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
    reference = summary.reference
    figures = {
        "pareto": pareto_figure(data, title="Validation Dice vs GFLOPs"),
        "hypervolume": hypervolume_figure([hypervolume_curve(study, records, x, y, reference)], reference, "area"),
        "ablation": ablation_figure(ablation_data(records), colours=data.color_keys),
        "parallel": parallel_figure(parallel_data(records)),
        "history": history_figure(objective_history(records)),
        "importance": importance_figure([param_importance(records, name) for name in study_objective_names(records)]),
    }
    rows = trial_rows(records)
    payload = {
        "figures": {name: json.loads(pio.to_json(fig, validate=False)) for name, fig in figures.items()},
        "details": _details(study, records, storage, {p.number for p in front}),
        "columns": list(_COLUMNS),
        "rows": [[r.get(c) for c in _COLUMNS] for r in rows],
        "export_template": export_command(study, 0, storage)
        .replace("--trial 0", "--trial {N}")
        .replace("-t0", "-t{N}"),
        "csv_name": f"trials-{study}.csv",
    }
    meta = _script_json({"pareto_trials": [p.number for p in front], "front_trace": FRONT_TRACE})
    front_rows = [row for row in trial_rows(records, ("COMPLETE",)) if row["trial"] in {p.number for p in front}]
    states = sorted({str(r["state"]) for r in rows})
    options = '<option value="">every state</option>' + "".join(
        f'<option value="{html.escape(s)}">{html.escape(s)}</option>' for s in states
    )
    figure_divs = "".join(  # each as tall as its figure before it is drawn: nothing below moves
        f'<div id="{name}" class="lazy" style="height:{figures[name].layout.height}px"></div>'
        for name in ("hypervolume", "history", "ablation", "importance", "parallel")
    )
    head_row = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
    return (
        f'{head}<script type="application/json" id="nas-report-meta">{meta}</script></head><body>{intro}'
        '<div id="front-row"><div id="pareto"></div><div id="detail"><p>Click a point of the front to see its '
        "architecture and export command (plotly.js is inlined: this page works offline).</p></div></div>"
        f"{figure_divs}<h2>Pareto set</h2>{_table(front_rows, _COLUMNS)}{verdict_html(records)}"
        f'<h2>All trials</h2><p><label>state <select id="state-filter">{options}</select></label>'
        '<button id="prev-page" type="button">previous</button><button id="next-page" type="button">next</button> '
        '<span id="table-page"></span><button id="csv" type="button">download CSV</button></p>'
        f'<table id="all-trials"><thead><tr>{head_row}</tr></thead><tbody></tbody></table>'
        f'<script type="application/octet-stream" id="nas-plotly">{_packed_plotly()}</script>'
        f'<script type="application/octet-stream" id="nas-data">{_packed(json.dumps(payload))}</script>'
        f"<script>{_PAGE_JS}</script></body></html>\n"
    )
