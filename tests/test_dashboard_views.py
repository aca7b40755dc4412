"""The dashboard's figures, computed from hand-made trial records and rendered without a browser."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import optuna
import pytest

from dashboards import (
    FRONT_TRACE,
    OBJECTIVES,
    STAIRCASE_TRACE,
    ablation_data,
    ablation_figure,
    diagram_data,
    diagram_svg,
    empty_reason,
    front_data,
    hypervolume_curve,
    hypervolume_figure,
    parallel_data,
    parallel_figure,
    pareto_figure,
    report_html,
    study_summary,
    trial_detail,
    trial_rows,
)
from dashboards._report import unpack_report_data
from search_spaces import ArchSpec, AttentionSpec
from studies import TrialRecord, hypervolume_2d, open_storage, pareto_records, trial_records
from tests._studyfactory import make_rich_study, make_study


def spec(block: str = "none", options: tuple = (), placement: tuple = (), channels: tuple = (8, 16, 32)) -> dict:
    return ArchSpec(channels=channels, attention=AttentionSpec(block, options, placement)).to_dict()


def rec(number: int, dice: float | None, gflops: float | None, state: str = "COMPLETE", **kw: object) -> TrialRecord:
    values = (dice, gflops) if state == "COMPLETE" and dice is not None and gflops is not None else None
    flops = None if gflops is None else int(gflops * 1e9)
    return TrialRecord(number=number, state=state, values=values, flops=flops, **kw)  # type: ignore[arg-type]


@pytest.fixture
def records(tmp_path: Path) -> list[TrialRecord]:
    storage = open_storage(f"sqlite:///{tmp_path / 'r.db'}", create=True)
    return trial_records(make_study(storage, "rep"))


# ---------------------------------------------------------------- Pareto scatter


def test_front_marks_exactly_the_pareto_set_and_hides_other_states(records: list[TrialRecord]) -> None:
    data = front_data({"rep": records})
    assert [p.number for p in data.points] == [0, 1, 2, 3]
    assert [p.number for p in data.fronts["rep"]] == [0, 1]
    assert data.hidden == {"PRUNED": 1, "FAIL": 1}
    assert {p.color_key for p in data.points} == {"none", "sa"}
    assert {p.symbol_key for p in data.points} == {"—", "skip"}


def test_pruned_and_failed_are_drawn_on_request_but_never_on_the_front() -> None:
    history = ({"epoch": 1, "val_dice": 0.7}, {"epoch": 2, "val_dice": 0.9})
    rs = [
        rec(0, 0.5, 0.1),
        rec(1, None, 0.01, state="PRUNED", history=history),  # would dominate if it counted
        rec(2, None, 0.02, state="FAIL", error="boom"),
        rec(3, None, None, state="FAIL"),  # no FLOPs: cannot be placed
    ]
    data = front_data({"s": rs}, states=("PRUNED", "FAIL"))
    by_number = {p.number: p for p in data.points}
    assert by_number[1].y == 0.9 and by_number[1].x == 0.01  # best Dice so far, its FLOPs
    assert by_number[2].y == 0.0  # failed: Dice 0
    assert [p.number for p in data.fronts["s"]] == [0]
    assert data.hidden == {"no value": 1}
    fig = pareto_figure(data)
    front = next(t for t in fig.data if t.name == FRONT_TRACE)
    assert [list(c[:2]) for c in front.customdata] == [["s", 0]]


def test_objectives_switch_and_must_differ() -> None:
    rs = [
        rec(0, 0.6, 0.1, params=3_000_000),
        rec(1, 0.5, 0.2, params=1_000_000),  # dominated on GFLOPs, on the front on params
        rec(2, 0.4, 0.3, params=2_000_000),
    ]
    assert [p.number for p in front_data({"s": rs}).fronts["s"]] == [0]
    by_params = front_data({"s": rs}, x="params")
    assert [p.number for p in by_params.fronts["s"]] == [1, 0]
    assert by_params.x.label == OBJECTIVES["params"].label and by_params.points[0].x == 3.0
    with pytest.raises(ValueError, match="two different objectives"):
        front_data({"s": rs}, x="dice", y="dice")
    with pytest.raises(ValueError, match="expected one of dice, gflops"):
        front_data({"s": rs}, x="latency_on_mars")


def test_figure_has_the_front_trace_staircase_and_faded_dominated_points(records: list[TrialRecord]) -> None:
    fig = pareto_figure(front_data({"rep": records}))
    by_name = {t.name: t for t in fig.data}
    front = by_name[FRONT_TRACE]
    assert list(front.x) == [0.05, 0.08] and list(front.y) == [0.50, 0.60]
    assert "sa(dot)@skip[0]" in front.customdata[1][3] and "%{customdata[3]}" in front.hovertemplate
    stairs = by_name[STAIRCASE_TRACE]
    assert list(stairs.x) == [0.05, 0.08, 0.08] and list(stairs.y) == [0.50, 0.50, 0.60]
    dominated = [t for t in fig.data if t.name == "sa" and t.showlegend is False]
    assert sum(len(t.x) for t in dominated) == 2 and all(t.opacity < 1 for t in dominated)
    swatches = {t.name: t.marker.color for t in fig.data if len(t.x) == 1 and t.x[0] is None}
    assert set(swatches) >= {"none", "sa", "placement: skip"}  # 'none' has no dominated trial: still listed
    assert any(t.name == "placement: skip" for t in fig.data)  # symbol legend


def test_the_knee_is_marked_on_the_dice_gflops_front(records: list[TrialRecord]) -> None:
    from studies import knee_record

    data = front_data({"rep": records})
    assert data.knees == {"rep": knee_record(records).number}
    (note,) = pareto_figure(data).layout.annotations
    assert note.text == f"knee: trial {knee_record(records).number}" and note.standoff > 0
    assert front_data({"rep": records}, x="params").knees == {}  # a knee of other axes is not the export's


def test_overlay_draws_one_front_per_study(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", create=True)
    a = trial_records(make_rich_study(storage, "a", 60, seed=1))
    b = trial_records(make_rich_study(storage, "b", 40, seed=2))
    data = front_data({"a": a, "b": b})
    assert data.overlay
    fig = pareto_figure(data)
    for name, rs in (("a", a), ("b", b)):
        trace = next(t for t in fig.data if t.name == f"{FRONT_TRACE} · {name}")
        assert len(trace.x) == len(pareto_records(rs))
        assert {c[0] for c in trace.customdata} == {name}


def test_many_points_switch_to_webgl() -> None:
    rs = [rec(i, 0.5 + (i % 7) / 100, 0.1 + (i % 11) / 100, spec=spec()) for i in range(10_001)]
    fig = pareto_figure(front_data({"s": rs}))
    assert any(t.type == "scattergl" for t in fig.data)
    front = next(t for t in fig.data if t.name == FRONT_TRACE)
    assert front.type == "scatter" and len(front.x) == len(pareto_records(rs))


# ---------------------------------------------------------------- hypervolume


def brute_hypervolume(points: np.ndarray, ref: tuple[float, float]) -> float:
    """Area of the union of rectangles [x, ref_x] × [ref_y, y] (min x, max y), by inclusion on a grid of cuts."""
    if len(points) == 0:
        return 0.0
    xs = sorted({*points[:, 0], ref[0]})
    area = 0.0
    for left, right in itertools.pairwise(xs):
        height = max((y - ref[1] for x, y in points if x <= left and y > ref[1]), default=0.0)
        area += (right - left) * height
    return area


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_hypervolume_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)])
    points[5] = points[6]  # a duplicate
    ref = (1.1, 0.0)
    assert hypervolume_2d(points, [False, True], ref) == pytest.approx(brute_hypervolume(points, ref))


def test_hypervolume_curve_is_the_hypervolume_of_each_prefix() -> None:
    rng = np.random.default_rng(3)
    rs = []
    for i in range(60):
        state = "PRUNED" if i % 9 == 4 else "COMPLETE"
        rs.append(rec(i, float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.05, 0.5)), state=state))
    x, y = OBJECTIVES["gflops"], OBJECTIVES["dice"]
    curve = hypervolume_curve("s", rs, x, y, (0.6, 0.0))
    assert curve.numbers == tuple(range(60))
    for k in (0, 4, 17, 59):
        prefix = np.array([[r.gflops, r.dice] for r in rs[: k + 1] if r.state == "COMPLETE"])
        assert curve.values[k] == pytest.approx(brute_hypervolume(prefix, (0.6, 0.0)))
    assert all(b >= a for a, b in itertools.pairwise(curve.values))
    assert len(hypervolume_figure([curve], (0.6, 0.0), "area").data) == 1


def test_study_summary_by_hand(records: list[TrialRecord]) -> None:
    s = study_summary("rep", records)
    assert s.trials == 6 and s.counts == {"COMPLETE": 4, "FAIL": 1, "PRUNED": 1}
    assert s.best_dice == 0.60 and s.pareto_size == 2
    # reference: Dice 0, GFLOPs 0.10 + 10% of the 0.05..0.10 range = 0.105
    assert s.reference == pytest.approx((0.105, 0.0))
    assert s.hypervolume == pytest.approx((0.105 - 0.05) * 0.50 + (0.105 - 0.08) * (0.60 - 0.50))


@pytest.mark.parametrize("seed", range(3))
def test_study_summary_front_and_hypervolume_match_a_naive_pareto_set(seed: int) -> None:
    """On trials of every state (INFEASIBLE, told COMPLETE at Dice 0, PRUNED, FAIL): the Pareto size and
    hypervolume are those of the COMPLETE trials that no other COMPLETE trial dominates (pairwise)."""
    storage = optuna.storages.InMemoryStorage()
    rs = trial_records(make_rich_study(storage, "s", 300, seed=seed))
    done = [(r.gflops, r.dice) for r in rs if r.state == "COMPLETE" and r.gflops is not None and r.dice is not None]
    front = [
        (x, y)
        for x, y in done
        if not any(ox <= x and oy >= y and (ox < x or oy > y) for ox, oy in done)  # no one at least as good
    ]
    s = study_summary("s", rs, (1.0, 0.0))
    assert len({r.state for r in rs}) >= 4 and s.pareto_size == len(set(front)) > 2
    assert s.hypervolume == pytest.approx(brute_hypervolume(np.array(front), (1.0, 0.0)))
    assert s.pareto_size == len(front_data({"s": rs}).fronts["s"])  # what the Pareto tab draws


# ---------------------------------------------------------------- empty studies, ablation, parallel, table


def test_empty_and_failed_only_studies_say_why() -> None:
    assert "has no trials yet. Start one with: nas search --study e" in (empty_reason("e", []) or "")
    failed = [rec(0, None, None, state="FAIL", error="RuntimeError: CUDA out of memory\n  at line 3")]
    reason = empty_reason("f", failed) or ""
    assert "no complete trial yet (1 FAIL)" in reason and "CUDA out of memory" in reason and "line 3" not in reason
    assert empty_reason("ok", [rec(0, 0.5, 0.1)]) is None
    assert pareto_figure(front_data({"e": []})).layout.annotations[0].text == "No trial to show yet."


def test_ablation_groups_dice_by_each_choice() -> None:
    skip = (("skip", (0,)),)
    rs = [
        rec(0, 0.50, 0.1, spec=spec()),
        rec(1, 0.60, 0.1, spec=spec("pwa", (), skip)),
        rec(2, 0.70, 0.1, spec=spec("joint", (("arrangement", "parallel"), ("shortcut", "inside")), skip)),
        rec(3, 0.72, 0.1, spec=spec("joint", (("arrangement", "sa_first"), ("shortcut", "outside")), skip)),
        rec(4, 0.65, 0.1, spec=spec("se", (), (("encoder", (0, 1)),))),
        rec(5, None, 0.1, state="PRUNED", spec=spec("pwa", (), skip)),  # not counted
    ]
    facets = {f.title: f.groups for f in ablation_data(rs)}
    assert facets["attention type"] == {"pwa+sa": (0.70, 0.72), "se": (0.65,), "pwa": (0.60,), "none": (0.50,)}
    assert facets["placement"] == {"skip": (0.60, 0.70, 0.72), "encoder": (0.65,), "—": (0.50,)}
    assert facets["arrangement"] == {"b_first": (0.72,), "parallel": (0.70,), "single": (0.60, 0.65), "—": (0.50,)}
    assert facets["shortcut"] == {"outside": (0.72,), "inside": (0.70,), "—": (0.50, 0.60, 0.65)}
    fig = ablation_figure(ablation_data(rs))
    assert len(fig.data) == 4 + 3 + 4 + 3  # one box per group
    axes = parallel_data(rs)
    assert [a.label for a in axes][:4] == ["attention type", "placement", "arrangement", "shortcut"]
    assert axes[0].ticks == ("none", "pwa", "pwa+sa", "se") and len(axes[0].values) == 5
    assert axes[-1].values == (0.50, 0.60, 0.70, 0.72, 0.65)
    assert len(parallel_figure(axes).data[0].dimensions) == len(axes)


def test_trials_table_filters_states_and_names_infeasible() -> None:
    rs = [
        rec(0, 0.5, 0.1, label="none unet 8-16-32"),
        rec(1, None, 0.3, state="FAIL", infeasible=True, error="needs 9000 MB > max_memory_mb 4096"),
        rec(2, None, 0.1, state="PRUNED", history=({"epoch": 1, "val_dice": 0.41},)),
    ]
    rows = trial_rows(rs)
    assert [r["state"] for r in rows] == ["COMPLETE", "INFEASIBLE", "PRUNED"]
    assert rows[1]["error"].startswith("needs 9000 MB") and rows[2]["dice"] == 0.41
    assert [r["trial"] for r in trial_rows(rs, ("COMPLETE",))] == [0]


def test_trial_detail_has_metrics_curve_and_a_quoted_export_command() -> None:
    history = ({"epoch": 1, "val_dice": 0.4, "loss": 0.9}, {"epoch": 2, "val_dice": 0.5, "loss": 0.7})
    r = rec(7, 0.5, 0.1, params=1234, epochs=2, best_epoch=2, history=history, label="x", spec=spec())
    d = trial_detail("my study", r, "sqlite:///runs/nas.db")
    assert d.export_command == "nas export 'my study' --trial 7 --storage sqlite:///runs/nas.db -o 'export-my study-t7'"
    assert dict(d.metrics)["parameters"] == "1,234" and dict(d.metrics)["epochs"] == "2 of 2"
    assert d.curves == {"val_dice": (0.4, 0.5), "loss": (0.9, 0.7)} and d.epochs == (1.0, 2.0)
    pruned = trial_detail("s", rec(8, None, 0.1, state="PRUNED"), "sqlite:///x.db")
    assert "only COMPLETE trials can be exported" in pruned.export_command


# ---------------------------------------------------------------- architecture diagram


def test_diagram_draws_each_site_of_the_spec() -> None:
    s = spec("se", (), (("encoder", (0, 1)), ("bottleneck", (2,)), ("decoder", (1,))))
    d = diagram_data(s)
    assert d.sites() == {("encoder", 0), ("encoder", 1), ("bottleneck", 2), ("decoder", 1)}
    assert d.title == "unet · 2D · 8-16-32" and d.caption.startswith("se (")
    assert [b.role for b in d.boxes].count("encoder") == 2
    root = ET.fromstring(diagram_svg(d))  # well-formed SVG
    assert root.tag.endswith("svg")
    assert len([g for g in root.iter() if g.get("class", "").startswith("site ")]) == 4


def test_diagram_of_a_composition_and_of_a_gate() -> None:
    joint = diagram_data(spec("joint", (("arrangement", "parallel"), ("shortcut", "inside")), (("skip", (1,)),)))
    assert joint.sites() == {("skip", 1)}
    assert joint.caption.startswith("pwa ∥ sa, shortcut inside")
    assert {b.text for b in joint.badges} == {"pwa∥sa"}
    assert not [e for e in joint.edges if e.kind == "gate"]
    gate = diagram_data(spec("ag", (), (("skip", (0, 1)),)))
    assert len([e for e in gate.edges if e.kind == "gate"]) == 2 and "gated" in gate.caption
    plain = diagram_data(spec())
    assert plain.badges == () and plain.caption == "no attention"
    volume = diagram_data(ArchSpec(spatial_dims=3, channels=(8, 16)).to_dict())
    assert volume.title == "unet · 3D · 8-16"


def test_the_diagrams_gates_are_the_registrys_for_every_block_and_composition() -> None:
    """The diagram knows which blocks take a gating signal without importing the registry (torch):
    its table must say what the registry says, for every built-in block (presets as they expand)
    and every composition of two primitives."""
    from dashboards._diagram import BUILT_IN_BLOCKS, _gated
    from search_spaces import block_info, block_names, canonical_block
    from search_spaces.blocks import composable_blocks

    def registry_says(name: str, options: dict[str, object]) -> bool:
        block, resolved = canonical_block(name, options, field_name="attention")
        return block_info(block).uses_gate(resolved)

    built_in = {n for n in block_names() if block_info(n).factory.__module__.startswith("search_spaces.")}
    assert set(BUILT_IN_BLOCKS) == built_in, "a block was registered or removed: update dashboards._diagram"
    # the table's rule for compositions is composition_uses_gate's; any other option-dependent gate needs a rule
    assert [n for n in built_in if block_info(n).gate_of is not None] == ["compose"]
    primitives = [n for n in built_in if n != "compose"]
    for name in primitives:
        assert _gated({"block": name}) == registry_says(name, {}), name
    for a, b in itertools.product(composable_blocks(), repeat=2):
        options = {"a": a, "b": b, "arrangement": "parallel", "shortcut": "inside"}
        assert _gated({"block": "compose", "options": options}) == registry_says("compose", options), (a, b)
    assert any(block_info(n).needs_gate for n in primitives)  # the comparison covers a gated block


# ---------------------------------------------------------------- the offline report


def test_report_is_self_contained_with_every_view(records: list[TrialRecord]) -> None:
    page = report_html("rep", records, storage="sqlite:///nas.db")
    assert page.startswith("<!DOCTYPE html>")
    assert "plotly.js is inlined" in page and len(page) > 500_000  # plotly.js is inlined (gzipped), once
    assert page.count('id="nas-plotly"') == 1 and 'src="http' not in page
    assert '"pareto_trials": [0, 1]' in page
    for div in ("pareto", "hypervolume", "history", "ablation", "importance", "parallel"):
        assert f'id="{div}"' in page
    data = unpack_report_data(page)
    assert set(data["figures"]) == {"pareto", "hypervolume", "history", "ablation", "importance", "parallel"}
    assert data["details"]["1"]["export"] == "nas export rep --trial 1 --storage sqlite:///nas.db -o export-rep-t1"
    assert "<svg" in data["details"]["1"]["svg"]  # diagrams of the front are embedded
    assert [row[0] for row in data["rows"]] == [r.number for r in records]  # every trial, every state
    template = data["export_template"].replace("{N}", "3")
    assert template == "nas export rep --trial 3 --storage sqlite:///nas.db -o export-rep-t3"


@pytest.mark.parametrize(
    ("kind", "expected"), [("empty", "has no trials yet"), ("failed", "has no complete trial yet (2 FAIL)")]
)
def test_report_of_a_study_with_nothing_to_plot_says_why(kind: str, expected: str) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    if kind == "failed":
        for _ in range(2):
            study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    page = report_html("s", trial_records(study), storage="sqlite:///nas.db")
    assert expected in page and "Plotly" not in page
    assert not math.isnan(study_summary("s", trial_records(study)).hypervolume)


def test_compositions_are_grouped_by_their_pair(tmp_path: Path) -> None:
    from studies import create_study
    from tests._studyfactory import add_trial

    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}", create=True)
    study = create_study(storage, "pairs")
    joint = ArchSpec(channels=(8, 16, 32), attention=AttentionSpec("joint", (), (("skip", (0,)),)))
    add_trial(study, joint, (0.5, 0.1))
    (record,) = trial_records(study)
    assert record.block == "pwa+sa"
    assert front_data({"p": [record]}).points[0].color_key == "pwa+sa"


def test_hostile_names_and_texts_stay_inert(tmp_path: Path) -> None:
    import json
    import re

    from dashboards._views import first_line

    nasty = 'x<!--<script></script>&"'
    rs = [rec(0, 0.5, 0.1, label=nasty, spec=spec()), rec(1, None, None, state="FAIL", error="  \n \n")]
    page = report_html(nasty, rs, storage="sqlite:///nas.db")
    block = re.search(r'<script type="application/octet-stream" id="nas-data">(.*?)</script>', page, re.S)
    assert block is not None and "<" not in block.group(1)
    assert unpack_report_data(page)["details"]["0"]["label"] == nasty
    assert json.loads(re.search(r'id="nas-report-meta">(.*?)</script>', page, re.S).group(1))["pareto_trials"] == [0]
    assert page.rstrip().endswith("</html>") and "<h2>All trials</h2>" in page
    assert first_line("  \n \n") == "" and trial_rows(rs)[1]["error"] == ""


def test_non_finite_objectives_are_never_on_the_front() -> None:
    rs = [
        rec(0, 0.5, 0.1, peak_memory_mb=float("nan")),
        rec(1, 0.6, 0.2, peak_memory_mb=50.0),
        rec(2, 0.7, 0.3, peak_memory_mb=60.0),
    ]
    data = front_data({"s": rs}, x="memory")
    assert [p.number for p in data.fronts["s"]] == [1, 2] and data.hidden == {"no value": 1}


def test_the_diagram_draws_every_mechanism_of_a_two_mechanism_spec() -> None:
    spec = ArchSpec(
        spatial_dims=3,
        channels=(8, 16, 32),
        attention=AttentionSpec("pam", (), (("bottleneck", (2,)),)),
        extra_attention=(AttentionSpec("ag", (), (("skip", (0, 1)),)),),
    ).to_dict()
    data = diagram_data(spec)
    assert {(b.placement, b.level) for b in data.badges} == {("bottleneck", 2), ("skip", 0), ("skip", 1)}
    assert " + " in data.caption and "gated" in data.caption
    assert sum(e.kind == "gate" for e in data.edges) == 2


def test_architectures_with_seeds_get_interval_bars_and_the_report_their_verdict() -> None:
    """Error bars (mean and 95% t-interval of Dice over seeds) at each architecture's GFLOPs, checked
    against the naive formula; the report prints the front over architectures with its ties."""
    import math

    from dashboards import pareto_figure, report_html
    from dashboards._figures import INTERVAL_TRACE
    from studies import TrialRecord

    def runs(start: int, block: str, gflops: float, dices: list[float]) -> list[TrialRecord]:
        spec = {"backbone": "unet", "channels": [8, 16], "attention": {"block": block}}
        return [
            TrialRecord(
                number=start + i, state="COMPLETE", values=(d, gflops), spec=spec, spec_hash=block,
                label=f"{block} unet 8-16", flops=int(gflops * 1e9), seed=i,
            )
            for i, d in enumerate(dices)
        ]  # fmt: skip

    records = runs(0, "none", 1.0, [0.80, 0.81, 0.82]) + runs(3, "pwa", 2.0, [0.805, 0.815, 0.83])
    data = front_data({"s": records})
    (bar_none, bar_pwa) = sorted(data.bars["s"], key=lambda b: b.x)
    values = [0.805, 0.815, 0.83]
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = 4.302652729749464 * sd / math.sqrt(3)  # t(0.975, 2), from the tables
    assert (bar_pwa.x, bar_pwa.n, bar_pwa.tied) == (2.0, 3, True) and not bar_none.tied
    assert bar_pwa.mean == pytest.approx(mean) and (bar_pwa.low, bar_pwa.high) == pytest.approx(
        (mean - half, mean + half)
    )
    (trace,) = [t for t in pareto_figure(data).data if t.name == INTERVAL_TRACE]
    assert trace.hoverinfo == "skip"  # never the marker a click or hover picks
    assert list(trace.error_y.array) == pytest.approx([b.high - b.mean for b in (bar_none, bar_pwa)])
    page = report_html("s", records, storage="sqlite:///nas.db")
    assert "Front over architectures" in page and "tied with trial 0 (none unet 8-16)" in page
