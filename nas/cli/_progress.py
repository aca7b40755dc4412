"""The live view of a running search: one status line after every trial."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from dashboards import study_summary
from studies import TrialRecord

#: States shown, in this order (a state with no trials is shown as 0 all the same).
SHOWN_STATES = ("COMPLETE", "PRUNED", "FAIL", "INFEASIBLE", "REUSED")


def progress_line(records: Sequence[TrialRecord], running: int, reference: tuple[float, float] | None = None) -> str:
    """``running 2 · complete 5 · pruned 1 · ... · front 3 · HV 0.412 · best Dice 0.613`` (the
    hypervolume above the study's fixed ``reference``, (GFLOPs, Dice))."""
    summary = study_summary("", records, reference)
    parts = [f"running {running}"]
    parts += [f"{state.lower()} {summary.counts.get(state, 0)}" for state in SHOWN_STATES]
    parts.append(f"front {summary.pareto_size}")
    parts.append(f"HV {summary.hypervolume:.4g}")
    if summary.best_dice is not None:
        parts.append(f"best Dice {summary.best_dice:.4f}")
    return " · ".join(parts)


class ProgressView:
    """Prints ``progress_line`` after every trial (``on_progress`` of ``run_search``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream  # None: whatever sys.stdout is when a line is printed (Ray pickles this)
        self.lines = 0
        #: The study's fixed hypervolume reference (GFLOPs, Dice), set once the study is open.
        self.reference: tuple[float, float] | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"_stream": None, "lines": self.lines, "reference": self.reference}

    def update(self, records: list[TrialRecord], running: int) -> None:
        line = progress_line(records, running, self.reference)
        print("    " + line, file=self._stream or sys.stdout, flush=True)
        self.lines += 1
