"""The Pareto figure is computed from records (no browser), then rendered by Plotly."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from dashboards import pareto_figure, pareto_plot_data, report_html
from studies import open_storage, trial_records
from tests._studyfactory import make_study


@pytest.fixture
def records(tmp_path: Path) -> list:
    storage = open_storage(f"sqlite:///{tmp_path / 'r.db'}", create=True)
    return trial_records(make_study(storage, "rep"))


def test_plot_data_marks_exactly_the_pareto_set(records: list) -> None:
    data = pareto_plot_data("t", records)
    assert len(data.points) == 4  # complete trials only
    assert [p.number for p in data.front] == [0, 1]
    assert data.counts == {"COMPLETE": 4, "FAIL": 1, "PRUNED": 1}
    assert {p.block for p in data.points} == {"none", "sa"}


def test_figure_has_a_pareto_trace_with_the_front_and_architecture_hover(records: list) -> None:
    fig = pareto_figure(pareto_plot_data("t", records))
    by_name = {trace.name: trace for trace in fig.data}
    front = by_name["Pareto set"]
    assert list(front.customdata) == [0, 1]
    assert list(front.x) == [0.05, 0.08] and list(front.y) == [0.50, 0.60]
    assert "sa(dot)@skip[0]" in front.hovertext[1]
    dominated = [t for t in fig.data if t.name not in ("Pareto set", "Pareto front")]
    assert sum(len(t.x) for t in dominated) == 2


def test_report_is_self_contained_html(records: list) -> None:
    page = report_html(pareto_plot_data("Study rep", records))
    assert page.startswith("<!DOCTYPE html>")
    assert "Plotly" in page and len(page) > 1_000_000  # plotly.js is inlined
    assert 'src="http' not in page and "cdn.plot.ly" not in page.split("</head>")[0]
    assert '"pareto_trials": [0, 1]' in page


def test_empty_study_renders_an_empty_front() -> None:
    data = pareto_plot_data("empty", [])
    assert data.points == () and data.front == ()
    assert "0 of\n0 complete trials" in report_html(data)


def test_only_failed_trials(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(2):
        study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    data = pareto_plot_data("failed", trial_records(study))
    assert data.counts == {"FAIL": 2} and data.front == ()


def test_compositions_are_grouped_by_their_pair(tmp_path: Path) -> None:
    from search_spaces import ArchSpec, AttentionSpec
    from studies import create_study
    from tests._studyfactory import add_trial

    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}", create=True)
    study = create_study(storage, "pairs")
    joint = ArchSpec(channels=(8, 16, 32), attention=AttentionSpec("joint", (), (("skip", (0,)),)))
    add_trial(study, joint, (0.5, 0.1))
    (record,) = trial_records(study)
    assert record.block == "pwa+sa"
    assert pareto_plot_data("p", [record]).points[0].block == "pwa+sa"
