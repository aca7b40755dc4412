"""The verdict over architectures: intervals over seeds, ties, twins and fidelity, checked against
naive float64 formulas written from the definitions (Student-t and Welch intervals, Spearman's ρ)."""

from __future__ import annotations

import math

import pytest

from studies import CONFIRM_STAGE, SEARCH_STAGE, TrialRecord, architecture_results, verdict

#: Student t quantiles t(0.975, dof) from the tables (not from the code under test).
T975 = {1: 12.706204736174698, 2: 4.302652729749464, 3: 3.182446305284263, 4: 2.7764451051977934}


def _spec(block: str, width: int) -> dict:
    attention = {"block": block, "options": {}, "placement": {"skip": [0]} if block != "none" else {}}
    return {"backbone": "unet", "channels": [width, 2 * width], "attention": attention}


def _runs(start: int, block: str, width: int, gflops: float, dices: list[float], stage: str) -> list[TrialRecord]:
    spec = _spec(block, width)
    return [
        TrialRecord(
            number=start + i,
            state="COMPLETE",
            values=(d, gflops),
            spec=spec,
            spec_hash=f"{block}-{width}",
            label=f"{block}/{width}",
            flops=int(gflops * 1e9),
            seed=i,
            stage=stage,
        )
        for i, d in enumerate(dices)
    ]


def _naive_interval(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    h = T975[n - 1] * sd / math.sqrt(n)
    return mean - h, mean + h


def test_interval_is_the_student_t_interval_over_seeds() -> None:
    dices = [0.71, 0.74, 0.725]
    (arch,) = architecture_results(_runs(0, "pwa", 8, 1.0, dices, SEARCH_STAGE))
    lo, hi = _naive_interval(dices)
    assert arch.n == 3
    assert arch.interval == pytest.approx((lo, hi), abs=1e-9)
    assert arch.sd == pytest.approx(math.sqrt(sum((d - 0.725) ** 2 for d in dices) / 2), abs=1e-12)


def test_a_member_whose_interval_overlaps_a_cheaper_one_is_tied() -> None:
    records = (
        _runs(0, "none", 8, 1.0, [0.80, 0.81, 0.82], SEARCH_STAGE)  # cheap
        + _runs(10, "pwa", 8, 2.0, [0.805, 0.815, 0.83], SEARCH_STAGE)  # more Dice, within the noise
        + _runs(20, "sa", 16, 4.0, [0.90, 0.91, 0.92], SEARCH_STAGE)  # clearly better
    )
    result = verdict(records)
    by_label = {a.label: a for a in result.front}
    assert set(by_label) == {"none/8", "pwa/8", "sa/16"}
    assert by_label["none/8"].tied_with is None
    assert by_label["pwa/8"].tied_with == "none-8"
    assert by_label["sa/16"].tied_with is None
    # What pwa bought over its twin (same widths, no attention): Welch's interval holds 0.
    (twin,) = [t for t in result.twins if t.member.label == "pwa/8"]
    a, b = [0.805, 0.815, 0.83], [0.80, 0.81, 0.82]
    ma, mb = sum(a) / 3, sum(b) / 3
    va = sum((x - ma) ** 2 for x in a) / 2 / 3
    vb = sum((x - mb) ** 2 for x in b) / 2 / 3
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    from scipy.stats import t

    h = float(t.ppf(0.975, dof)) * math.sqrt(va + vb)
    assert twin.difference == pytest.approx(ma - mb, abs=1e-12)
    assert twin.interval == pytest.approx((ma - mb - h, ma - mb + h), abs=1e-9)
    assert twin.resolved == "tied"


def test_one_run_has_no_interval_and_no_tie_is_claimed() -> None:
    records = _runs(0, "none", 8, 1.0, [0.80], SEARCH_STAGE) + _runs(5, "pwa", 8, 2.0, [0.8018], SEARCH_STAGE)
    result = verdict(records)
    assert [a.n for a in result.front] == [1, 1]
    assert all(a.interval is None and a.tied_with is None for a in result.front)
    assert result.twins[0].resolved == "n = 1"


def test_the_confirm_stage_alone_is_the_verdict_and_fidelity_is_spearman() -> None:
    search = (
        _runs(0, "none", 8, 1.0, [0.70], SEARCH_STAGE)
        + _runs(1, "pwa", 8, 2.0, [0.75], SEARCH_STAGE)
        + _runs(2, "sa", 16, 4.0, [0.80], SEARCH_STAGE)
        + _runs(3, "sa", 32, 8.0, [0.85], SEARCH_STAGE)
    )
    confirm = (
        _runs(10, "none", 8, 1.0, [0.69, 0.70], CONFIRM_STAGE)
        + _runs(20, "pwa", 8, 2.0, [0.72, 0.73], CONFIRM_STAGE)
        + _runs(30, "sa", 16, 4.0, [0.81, 0.82], CONFIRM_STAGE)
        + _runs(40, "sa", 32, 8.0, [0.78, 0.79], CONFIRM_STAGE)  # the search's best was a lucky seed
    )
    result = verdict(search + confirm)
    assert result.stage == CONFIRM_STAGE
    assert all(a.stage == CONFIRM_STAGE for a in result.architectures)
    assert "sa/32" not in {a.label for a in result.front}  # dominated once confirmed
    # Spearman by hand: search ranks 1,2,3,4; confirm means 0.695, 0.725, 0.815, 0.785 -> ranks 1,2,4,3.
    d2 = (0**2) + (0**2) + (1**2) + (1**2)
    assert result.fidelity == pytest.approx(1 - 6 * d2 / (4 * (4**2 - 1)), abs=1e-12)
    assert result.fidelity_pairs == 4


def test_the_export_model_card_gives_mean_sd_and_n_of_the_confirmed_architecture(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from nas.cli import main
    from studies import ATTR_SEED, ATTR_STAGE, create_study, open_storage
    from tests._studyfactory import add_trial, sa_spec

    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    study = create_study(
        open_storage(storage, create=True), "s", attrs={"data": {"kind": "synthetic"}, "input_shape": [1, 32, 32]}
    )
    spec = sa_spec()
    add_trial(study, spec, (0.90, 0.08), weights_dir=tmp_path)  # the search's (lucky) run
    dices = [0.71, 0.74, 0.725]
    for seed, dice in enumerate(dices, start=1):
        add_trial(study, spec, (dice, 0.08), weights_dir=tmp_path, attrs={ATTR_STAGE: CONFIRM_STAGE, ATTR_SEED: seed})
    assert main(["export", "s", "--trial", "2", "--storage", storage, "-o", str(tmp_path / "e")]) == 0
    summary = json.loads((tmp_path / "e" / "metrics.json").read_text())["architecture"]
    lo, hi = _naive_interval(dices)
    assert (summary["stage"], summary["n"], summary["trials"]) == (CONFIRM_STAGE, 3, [1, 2, 3])
    assert summary["dice_mean"] == pytest.approx(0.725) and summary["dice_interval_95"] == pytest.approx([lo, hi])
    card = (tmp_path / "e" / "MODEL_CARD.md").read_text()
    assert "over its 3 run(s) (confirm stage, trials [1, 2, 3]): Dice 0.7250 ±" in card and "95% t-interval" in card


@pytest.mark.parametrize(
    ("p", "dof", "table"),
    # Student's t table (two-sided 95% and 90%), and a Welch-style fractional dof against scipy.stats
    [(0.975, 1, 12.706205), (0.975, 4, 2.776445), (0.975, 30, 2.042272), (0.95, 9, 1.833113), (0.975, 7.5, None)],
)
def test_t_quantile_is_students(p: float, dof: float, table: float | None) -> None:
    from scipy.stats import t

    from studies._verdict import t_quantile

    assert t_quantile(p, dof) == pytest.approx(table if table is not None else float(t.ppf(p, dof)), abs=2e-6)
