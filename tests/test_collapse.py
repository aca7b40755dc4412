"""A trial whose validation Dice collapses while its loss falls is flagged, in the study and in
``nas status``, rather than ranked as if its architecture were at fault (or to credit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import main
from studies import ATTR_COLLAPSED, ATTR_DICE, ATTR_HISTORY, open_storage, records_frame, trial_records
from tests._studyfactory import add_trial, make_study, sa_spec
from trainers import collapse_note

#: The curve the issue measured: the CVC knee architecture retrained for 8 epochs.
CVC_DICE = [0.137, 0.061, 0.018, 0.005, 0.0005, 0.0, 0.0, 0.0]
CVC_LOSS = [1.47, 1.2, 1.0, 0.9, 0.82, 0.76, 0.72, 0.70]


def history(dice: list[float], loss: list[float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "val_dice": d, "loss": v} for i, (d, v) in enumerate(zip(dice, loss, strict=True))]


def test_a_curve_that_falls_to_zero_while_the_loss_falls_has_collapsed() -> None:
    note = collapse_note(history(CVC_DICE, CVC_LOSS))
    assert note == "val Dice fell from 0.137 (epoch 1) to 0.000 (epoch 8) while the loss fell from 1.470 to 0.700"


@pytest.mark.parametrize(
    ("dice", "loss", "collapsed"),
    [
        ([0.30, 0.45, 0.52, 0.50], [1.0, 0.8, 0.7, 0.65], False),  # noise below the best, within 0.8x
        ([0.30, 0.60, 0.47], [1.0, 0.8, 0.7], True),  # 0.47 < 0.8 x 0.60
        ([0.30, 0.60, 0.48], [1.0, 0.8, 0.7], False),  # exactly 0.8 x the best is not below it
        ([0.0, 0.0, 0.0], [1.0, 0.9, 0.8], True),  # never segments anything while it fits
        ([0.5, 0.1], [0.8, 0.9], False),  # the loss rose: diverging, not collapsing
        ([0.5], [0.8], False),  # one epoch says nothing
    ],
)
def test_the_collapse_rule(dice: list[float], loss: list[float], collapsed: bool) -> None:
    assert (collapse_note(history(dice, loss)) is not None) is collapsed


def test_status_marks_a_collapsed_front_member_and_lists_every_collapsed_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = make_study(open_storage(url, create=True), "c")
    note = collapse_note(history(CVC_DICE, CVC_LOSS))
    attrs = {ATTR_COLLAPSED: note, ATTR_DICE: 0.55, ATTR_HISTORY: history(CVC_DICE, CVC_LOSS)}
    number = add_trial(study, sa_spec((0, 1)), (0.55, 0.04), attrs=attrs)  # the cheapest: on the front
    assert main(["status", "c", "--storage", url]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(f"{number} "))
    assert row.rstrip().endswith("COLLAPSED")
    assert f"  trial {number}: {note}" in out
    others = [line for line in out.splitlines() if line[:1].isdigit() and not line.startswith(f"{number} ")]
    assert others and not any("COLLAPSED" in line for line in others)
    records = trial_records(study)
    frame = records_frame(records)
    assert frame.loc[frame["number"] == number, "collapsed"].item() == note
    assert frame.loc[frame["number"] != number, "collapsed"].isna().all()
