"""The benchmark harness runs (its figures are written down, not asserted), and the data it ships is sound."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO

#: The section titles of BENCHMARKS.md, one per benchmark of bench/run.py.
SECTIONS = (
    "Attention kernels",
    "Training throughput",
    "Search space: memory estimate",
    "Orchestration",
    "Dashboard",
    "Search efficiency (tabular benchmark)",
    "Main job",
    "Proof on real data",
    "GPU path",
)


def load_bench(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # the scripts import their shared helpers
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_harness_quick_mode_runs(tmp_path: Path) -> None:
    """`bench/run.py --quick` runs every benchmark and writes the report (the figures are not checked)."""
    output = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "NAS_SHARED_DATA": str(tmp_path / "absent")}  # synthetic data only: fast, always there
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--output", str(output)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    text = output.read_text()
    assert "**Failed:**" not in text
    assert "## Summary" in text and "| area | what | figure | reference (same run) |" in text
    for title in SECTIONS:
        assert f"\n## {title}\n" in text, title
    assert "MONAI AttentionUnet (reference)" in text and "joint pwa_first/separate" in text
    # Without CUDA the GPU benchmark's smoke run says so: no CPU figure passes for a GPU one.
    assert "CPU (smoke run: these are not GPU figures)" in text and "pam (SDPA, query/key padded to C)" in text
    assert "- command: `python bench/run.py --quick`" in text and "- machine: " in text


def test_tabular_benchmark_covers_the_demo_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped table answers every architecture the demo space can sample, and only those."""
    bench = load_bench("search_efficiency", monkeypatch)
    _, rows = bench.load_table()
    from nas import DEMO_SPACE
    from search_spaces import enumerate_specs

    hashes = {spec.spec_hash() for _, spec in enumerate_specs(DEMO_SPACE, bench.CONTEXT)}
    assert set(rows) == hashes
    assert all(0.0 <= r.dice <= 1.0 and r.gflops > 0 and r.params > 0 for r in rows.values())


def test_simulated_search_counts_only_new_architectures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ours trains each architecture once (duplicates are free); stock samplers count every sample."""
    bench = load_bench("search_efficiency", monkeypatch)
    _, rows = bench.load_table()
    reference = bench.reference_point(list(rows.values()))
    budget = 120
    ours = bench.simulate(rows, "random", "ours", seed=0, budget=budget, reference=reference)
    stock = bench.simulate(rows, "random", "stock", seed=0, budget=budget, reference=reference)
    points = bench.np.array([[r.dice, r.gflops] for r in rows.values()])
    true_hv = bench.front_hypervolume(points[bench.pareto_mask(points, bench.MAXIMIZE)], reference)
    assert len(ours.trained) == len(set(ours.trained)) == budget and ours.asked > budget
    assert len(stock.trained) == stock.asked == budget > len(set(stock.trained))
    for run in (ours, stock):
        assert len(run.hypervolumes) == budget and 0 < run.hypervolumes[-1] <= true_hv + 1e-12
        assert all(a <= b + 1e-12 for a, b in zip(run.hypervolumes, run.hypervolumes[1:], strict=False))
    # The baselines go first: the first trial ours trains is U-Net without attention.
    assert rows[ours.trained[0]].label.startswith("none unet ")


def test_the_table_records_every_epochs_validation_dice(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench("search_efficiency", monkeypatch)
    _, rows = bench.load_table()
    for row in rows.values():
        assert len(row.curve) == bench.TABLE_EPOCHS and all(0.0 <= d <= 1.0 for d in row.curve)
        assert max(row.curve) == pytest.approx(row.dice, abs=0.02)  # the recorded Dice is the best epoch's


def test_early_stopping_replay_spends_epochs_as_the_schedulers_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-budget trials cost every epoch; both schedulers stop trials at a rung and so start more of
    them in the same epochs; MOASHA keeps cheap trials that Dice-only ASHA stops."""
    bench = load_bench("search_efficiency", monkeypatch)
    _, rows = bench.load_table()
    reference = bench.reference_point(list(rows.values()))
    budget = 200
    runs = {
        kind: bench.simulate_epochs(rows, "random", kind, 0, budget, reference, reduction_factor=3.0)
        for kind in bench.SCHEDULERS
    }
    full = runs["full"]
    assert full.stopped == 0 and full.trials == budget // bench.TABLE_EPOCHS
    for kind in ("asha-dice", "moasha"):
        assert runs[kind].stopped > 0 and runs[kind].trials > full.trials, kind
    for run in runs.values():
        assert len(run.hypervolumes) == budget
        assert all(a <= b + 1e-12 for a, b in zip(run.hypervolumes, run.hypervolumes[1:], strict=False))
    # At a rung of (cheap, low Dice) and (dear, high Dice) trials, Ray's ASHA stops the cheap one
    # and ours keeps it: it is on the rung's front.
    cheap = bench.Row("c", "cheap", 0.4, 0.05, 1, 0.0, curve=(0.30, 0.35, 0.38, 0.39, 0.40))
    dear = bench.Row("d", "dear", 0.5, 0.30, 1, 0.0, curve=(0.45, 0.47, 0.48, 0.49, 0.50))
    asha, moasha = bench._scheduler("asha-dice", 5, 3.0), bench._scheduler("moasha", 5, 3.0)
    assert asha("0", 1, dear) and moasha("0", 1, dear)
    assert not asha("1", 1, cheap) and moasha("1", 1, cheap)


def test_the_gpu_benchmark_measures_nothing_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = load_bench("gpu", monkeypatch)
    monkeypatch.setattr(gpu.torch.cuda, "is_available", lambda: False)
    section = gpu.measure(quick=False)
    assert "Not measured: this machine has no CUDA device" in section.body and not section.headlines


def test_rerunning_some_benchmarks_keeps_the_others_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench/run.py --only X` replaces X's section and summary rows in BENCHMARKS.md, keeps the rest."""
    run = load_bench("run", monkeypatch)
    report = load_bench("_report", monkeypatch)
    old = [
        report.Section(
            "Alpha",
            "alpha body, old",
            [report.Headline("Alpha", "a figure", "1 s"), report.Headline("Alpha", "x", "9")],
        ),
        report.Section("Beta", "beta body", [report.Headline("Beta", "b figure", "2 s")]),
    ]
    existing = run.render(old, "python bench/run.py", 60.0, (0.1, 0.2))
    again = report.Section("Alpha", "alpha body, new", [report.Headline("Alpha", "a figure", "0.5 s")])
    added = report.Section("Gamma", "gamma body", [report.Headline("Gamma", "c figure", "3 s")])
    merged = run.merge(existing, [again, added], "python bench/run.py --only alpha,gamma", (0.3, 0.4))
    assert merged.startswith("# attention-nas benchmarks\n") and "- command: `python bench/run.py`" in merged
    assert "alpha body, new" in merged and "alpha body, old" not in merged
    assert "beta body" in merged and "gamma body" in merged
    assert "| Alpha | a figure | 0.5 s |" in merged and "| Alpha | a figure | 1 s |" not in merged
    assert "| Alpha | x |" not in merged
    assert "| Beta | b figure | 2 s |" in merged and "| Gamma | c figure | 3 s |" in merged
    assert merged.count("## Summary") == 1 and merged.count("\n## Alpha\n") == 1
    assert "Measured apart from the whole run above: `python bench/run.py --only alpha,gamma`" in merged
    assert merged.index("## Alpha") < merged.index("## Beta") < merged.index("## Gamma")  # order kept
    assert merged.index("| Alpha |") < merged.index("| Beta |") < merged.index("| Gamma |")


@pytest.mark.slow
def test_the_real_data_proof_runs_end_to_end_on_the_shared_data(tmp_path: Path) -> None:
    """`bench/proof.py --quick` on the shared DRIVE and Kvasir-SEG copies: the ja-ablation search,
    and search → confirm → export → retrain of the chosen architecture and its no-attention twin,
    all through the nas CLI (tiny budgets; the figures are not checked, that every step ran is)."""
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "drive").is_dir() or not (SHARED_DATA / "kvasir_seg").is_dir():
        pytest.skip(f"{SHARED_DATA} lacks drive/ or kvasir_seg/")
    output = tmp_path / "proof.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "proof.py"), "--quick", "--output", str(output)],
        cwd=tmp_path,
        env={**os.environ, "NAS_SHARED_DATA": str(SHARED_DATA)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    text = output.read_text()
    assert "| none denseunet 16-32-64-128 |" in text and "test Dice in the FOV" in text
    assert "Verdict stage: confirm" in text
    assert "retrained test Dice" in text or "has no attention" in text


def test_the_large_dashboard_study_is_every_trial_again_dominated_by_its_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench/dashboard.py's 50,000-trial study is written with SQL: every trial read back under a new
    number, with its states, attributes and learning curve, and the front unchanged."""
    bench = load_bench("dashboard", monkeypatch)
    from studies import StudyReader, open_storage, pareto_records
    from tests._studyfactory import make_rich_study

    small = tmp_path / "small.db"
    make_rich_study(open_storage(f"sqlite:///{small}", create=True), bench.STUDY, 60, seed=4)
    assert bench.replicate(small, tmp_path / "large.db", 3) == 180
    original = StudyReader(open_storage(f"sqlite:///{small}", create=False)).records(bench.STUDY)
    copied = StudyReader(open_storage(f"sqlite:///{tmp_path / 'large.db'}", create=False)).records(bench.STUDY)
    assert [r.number for r in copied] == list(range(180))
    for k in (1, 2):
        for r, c in zip(original, copied[60 * k : 60 * (k + 1)], strict=True):
            assert (c.state, c.spec, c.history) == (r.state, r.spec, r.history)
            if r.values is not None:
                assert c.values is not None and c.values[0] <= r.values[0] and c.values[1] >= r.values[1]
                assert c.values == pytest.approx(r.values, rel=0.021)
    assert {r.number for r in pareto_records(copied)} == {r.number for r in pareto_records(original)}
