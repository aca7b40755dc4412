"""Text views of a study shared by ``nas search`` and ``nas status``."""

from __future__ import annotations

from collections.abc import Sequence

from nas.cli._common import format_table
from studies import OBJECTIVE_DIRECTIONS, TrialRecord, complete_records, pareto_records, state_counts

#: Extra columns for objectives beyond Dice, GFLOPs and parameters.
_MEASURED = {"latency": ("latency ms", "{:.2f}"), "memory": ("memory MiB", "{:.1f}")}


def _fmt(value: float | None, pattern: str) -> str:
    return "?" if value is None else pattern.format(value)


def pareto_table(records: Sequence[TrialRecord]) -> str:
    front = pareto_records(records)
    done = complete_records(records)
    if not front:
        return "Pareto set: empty (no COMPLETE trials yet)"
    objectives = front[0].objectives
    extra = [name for name in objectives if name in _MEASURED]
    rows = [
        (
            r.number,
            _fmt(r.dice, "{:.4f}"),
            _fmt(r.gflops, "{:.4f}"),
            f"{r.params:,}" if r.params is not None else "?",
            *(_fmt(r.objective(name), _MEASURED[name][1]) for name in extra),
            r.label,
        )
        for r in front
    ]
    headers: tuple[str, ...] = ("trial", "dice", "GFLOPs", "params", *(_MEASURED[name][0] for name in extra))
    headers += ("architecture",)
    if any(r.collapsed for r in front):  # the front must not present a collapsed run as a finding
        rows = [(*row, "COLLAPSED" if r.collapsed else "") for row, r in zip(rows, front, strict=True)]
        headers += ("note",)
    goals = ", ".join(f"{'max' if OBJECTIVE_DIRECTIONS[n] == 'maximize' else 'min'} {_NAMES[n]}" for n in objectives)
    text = f"Pareto set ({len(front)} of {len(done)} complete trials; {goals}):\n{format_table(headers, rows)}"
    collapsed = [r for r in done if r.collapsed]
    if collapsed:
        text += (
            f"\ncollapsed: {len(collapsed)} complete trials' validation Dice fell while their loss fell, so their "
            "place says more about the training recipe than the architecture (their best epoch's weights are kept):"
        )
        text += "".join(f"\n  trial {r.number}: {r.collapsed}" for r in collapsed)
    return text


_NAMES = {"dice": "Dice", "gflops": "GFLOPs", "params": "parameters", "latency": "latency", "memory": "memory"}


def counts_line(records: Sequence[TrialRecord]) -> str:
    counts = state_counts(records)
    parts = ", ".join(f"{state} {n}" for state, n in counts.items()) or "none"
    return f"{len(records)} trials: {parts}"
