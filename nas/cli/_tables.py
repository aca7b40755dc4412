"""Text views of a study shared by ``nas search`` and ``nas status``."""

from __future__ import annotations

from collections.abc import Sequence

from nas.cli._common import format_table
from studies import (
    CONFIRM_STAGE,
    OBJECTIVE_DIRECTIONS,
    SEARCH_STAGE,
    TrialRecord,
    complete_records,
    pareto_records,
    state_counts,
    verdict,
)

#: Extra columns for objectives beyond Dice, GFLOPs and parameters.
_MEASURED = {"latency": ("latency ms", "{:.2f}"), "memory": ("memory MiB", "{:.1f}")}


def _fmt(value: float | None, pattern: str) -> str:
    return "?" if value is None else pattern.format(value)


def pareto_table(records: Sequence[TrialRecord]) -> str:
    """The search stage's trials on the Pareto set (confirm-stage runs are in ``verdict_table``)."""
    records = [r for r in records if r.stage == SEARCH_STAGE]
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


def verdict_table(records: Sequence[TrialRecord]) -> str:
    """The front over architectures: Dice as mean ± sd over seeds with its 95% interval and n, which
    members are tied (their Dice interval overlaps a cheaper member's), what attention bought over a
    no-attention twin, and the search-to-confirm rank correlation. Empty when nothing completed."""
    result = verdict(records)
    if not result.front:
        return ""
    costs = [n for n in result.objectives if OBJECTIVE_DIRECTIONS[n] == "minimize"]
    rows = []
    for a in result.front:
        interval, note = a.interval, result.note(a)
        rows.append(
            (
                ",".join(str(t) for t in a.trials),
                f"{a.mean:.4f}",
                "" if a.sd is None else f"{a.sd:.4f}",
                "" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]",
                a.n,
                *(_fmt(a.objectives.get(n), _COST_FORMATS[n]) for n in costs),
                a.label,
                note,
            )
        )
    headers = ("trials", "dice", "sd", "95% interval", "n", *(_COST_HEADERS[n] for n in costs), "architecture", "")
    where = (
        "confirmed: front members and their no-attention twins trained again with fresh seeds"
        if result.stage == CONFIRM_STAGE
        else "search stage"
    )
    text = f"Front over architectures ({len(result.front)} of {len(result.architectures)}; {where}):\n"
    text += format_table(headers, rows)
    if result.twins:
        text += "\nwhat the attention bought (member − its no-attention twin, Welch 95% interval):"
        for t in result.twins:
            span = "" if t.interval is None else f" [{t.interval[0]:+.4f}, {t.interval[1]:+.4f}]"
            text += f"\n  {t.member.label}: {t.difference:+.4f}{span} vs {t.twin.label} ({t.resolved})"
    if result.fidelity is not None:
        text += (
            f"\nfidelity: Spearman ρ {result.fidelity:+.2f} between the search's and the confirm stage's Dice "
            f"ranking of {result.fidelity_pairs} architectures"
        )
    elif result.stage == CONFIRM_STAGE:
        text += (
            f"\nfidelity: {result.fidelity_pairs} architectures ran in both stages; "
            "a rank correlation needs at least 3 with distinct Dice"
        )
    return text


_COST_HEADERS = {"gflops": "GFLOPs", "params": "params", "latency": "latency ms", "memory": "memory MiB"}
_COST_FORMATS = {"gflops": "{:.4f}", "params": "{:,.0f}", "latency": "{:.2f}", "memory": "{:.1f}"}
