"""Text views of a study shared by ``nas search`` and ``nas status``."""

from __future__ import annotations

from collections.abc import Sequence

from nas.cli._common import format_table
from studies import TrialRecord, complete_records, pareto_records, state_counts


def pareto_table(records: Sequence[TrialRecord]) -> str:
    front = pareto_records(records)
    done = complete_records(records)
    if not front:
        return "Pareto set: empty (no COMPLETE trials yet)"
    rows = [
        (
            r.number,
            f"{r.dice:.4f}",
            f"{r.gflops:.4f}",
            f"{r.params:,}" if r.params is not None else "?",
            r.label,
        )
        for r in front
    ]
    table = format_table(("trial", "dice", "GFLOPs", "params", "architecture"), rows)
    return f"Pareto set ({len(front)} of {len(done)} complete trials; max Dice, min GFLOPs):\n{table}"


def counts_line(records: Sequence[TrialRecord]) -> str:
    counts = state_counts(records)
    parts = ", ".join(f"{state} {n}" for state, n in counts.items()) or "none"
    return f"{len(records)} trials: {parts}"
