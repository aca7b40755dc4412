"""What a study's evidence supports: results per architecture over seeds, ties, twins and fidelity.

A trial is one training run; an *architecture* (its spec hash) is the unit of the front. With
several seeds, an architecture's Dice is the mean over its runs with a 95% Student-t interval
(``mean ± t(0.975, n−1) · sd / √n``). A front member is *tied* when its Dice interval overlaps the
interval of a front member that is no more expensive on every cost objective: its extra cost buys
no Dice the seeds can tell apart. Non-overlap of two 95% intervals is a conservative test (it
corresponds to p < 0.01 or so for equal variances): a member called better is better.

With one run an architecture has no interval: it is shown with ``n = 1`` and no tie is decided for
it. When a study has a confirm stage (front members and their no-attention twins trained again
with fresh seeds after the search), the verdict is the confirm stage's alone: the search-stage runs
were selected for being high, and adding them back would bias every confirmed mean upward.

Pure Python and numpy (no Optuna, no torch, no Plotly): the CLI, the report and the dashboard show
the same numbers.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from studies._pareto import pareto_mask
from studies._records import CONFIRM_STAGE, SEARCH_STAGE, TrialRecord, complete_records
from studies._study import OBJECTIVE_DIRECTIONS

#: The confidence of the intervals on Dice.
CONFIDENCE = 0.95
#: Fewest architectures with both a search and a confirm result for a rank correlation.
MIN_FIDELITY_PAIRS = 3


def t_quantile(p: float, dof: float) -> float:
    """Student's t quantile: scipy's ``stdtrit``, what ``scipy.stats.t.ppf`` computes, imported lazily
    and from ``scipy.special`` alone (0.4 s rather than scipy.stats' 1.2 s, in the dashboard's first
    front after it starts)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, p))


def twin_key(spec: Mapping[str, Any] | None) -> str | None:
    """What an architecture shares with its no-attention twin: the spec without its attention."""
    if not spec:
        return None
    rest = {k: v for k, v in spec.items() if k not in ("attention", "extra_attention")}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


def _has_attention(spec: Mapping[str, Any] | None) -> bool:
    if not spec:
        return False
    block = dict(spec.get("attention") or {}).get("block", "none")
    return block != "none" or bool(spec.get("extra_attention"))


@dataclass(frozen=True)
class ArchitectureResult:
    """One architecture's runs in one stage: the mean and spread of Dice over seeds, its costs."""

    spec_hash: str
    label: str
    block: str
    stage: str
    spec: Mapping[str, Any] | None
    trials: tuple[int, ...]
    seeds: tuple[int | None, ...]
    dices: tuple[float, ...]
    #: The mean of every objective over the runs, by name (Dice included).
    objectives: Mapping[str, float]
    gflops: float | None
    params: int | None
    collapsed: int = 0
    #: Set on front members by ``verdict``: the cheaper front member whose Dice interval overlaps.
    tied_with: str | None = field(default=None, compare=False)

    @property
    def n(self) -> int:
        return len(self.dices)

    @property
    def mean(self) -> float:
        return float(np.mean(self.dices))

    @property
    def sd(self) -> float | None:
        """Sample standard deviation over runs (None with one run)."""
        return float(np.std(self.dices, ddof=1)) if self.n > 1 else None

    @property
    def half_width(self) -> float | None:
        """Half the width of the 95% t-interval of the mean (None with one run)."""
        if self.sd is None:
            return None
        return t_quantile(0.5 + CONFIDENCE / 2, self.n - 1) * self.sd / math.sqrt(self.n)

    @property
    def interval(self) -> tuple[float, float] | None:
        h = self.half_width
        return None if h is None else (self.mean - h, self.mean + h)

    @property
    def has_attention(self) -> bool:
        return _has_attention(self.spec)

    def text(self) -> str:
        """``0.5612 ± 0.0040 (n 3)``, or ``0.5612 (n 1)``."""
        return f"{self.mean:.4f}" + (f" ± {self.sd:.4f}" if self.sd is not None else "") + f" (n {self.n})"


@dataclass(frozen=True)
class TwinComparison:
    """What the attention of ``member`` bought over its no-attention twin (same backbone and widths)."""

    member: ArchitectureResult
    twin: ArchitectureResult
    #: member mean − twin mean.
    difference: float
    #: Welch's 95% interval of the difference (None unless both have ≥ 2 runs).
    interval: tuple[float, float] | None

    @property
    def resolved(self) -> str:
        """``better``, ``worse`` or ``tied`` (the interval holds 0), or ``n = 1`` without an interval."""
        if self.interval is None:
            return "n = 1"
        lo, hi = self.interval
        return "better" if lo > 0 else "worse" if hi < 0 else "tied"


@dataclass(frozen=True)
class Verdict:
    """A study's architectures in the stage shown, their front, ties, twins and fidelity."""

    #: ``confirm`` when the study has confirm-stage results (then they alone are shown), else ``search``.
    stage: str
    objectives: tuple[str, ...]
    architectures: tuple[ArchitectureResult, ...]
    #: Front members, by the first cost objective (ascending).
    front: tuple[ArchitectureResult, ...]
    twins: tuple[TwinComparison, ...]
    #: Spearman's ρ between the search-stage and confirm-stage Dice of the architectures with both,
    #: and how many there were (None when fewer than ``MIN_FIDELITY_PAIRS``).
    fidelity: float | None
    fidelity_pairs: int

    @property
    def tied(self) -> tuple[ArchitectureResult, ...]:
        return tuple(a for a in self.front if a.tied_with is not None)

    def note(self, member: ArchitectureResult) -> str:
        """What the evidence says of a front member, in words: ``n = 1: no interval``, ``tied with
        trial 12 (none unet 8-16-32)``, or nothing (better than every cheaper member)."""
        if member.n < 2:
            return "n = 1: no interval"
        if member.tied_with is None:
            return ""
        other = next(a for a in self.architectures if a.spec_hash == member.tied_with)
        return f"tied with trial {other.trials[0]} ({other.label})"


def architecture_results(records: Sequence[TrialRecord], stage: str | None = None) -> list[ArchitectureResult]:
    """Complete, trained runs grouped by (stage, spec hash); ``stage`` keeps one stage only."""
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for r in complete_records(records):
        if r.spec_hash is None or r.dice is None or (stage is not None and r.stage != stage):
            continue
        groups.setdefault((r.stage, r.spec_hash), []).append(r)
    out = []
    for (group_stage, spec_hash), runs in groups.items():
        runs.sort(key=lambda r: r.number)
        first = runs[0]
        names = first.objectives
        means = {name: float(np.mean([r.objective(name) for r in runs])) for name in names}
        out.append(
            ArchitectureResult(
                spec_hash=spec_hash,
                label=first.label,
                block=first.block,
                stage=group_stage,
                spec=first.spec,
                trials=tuple(r.number for r in runs),
                seeds=tuple(r.seed for r in runs),
                dices=tuple(float(r.dice) for r in runs if r.dice is not None),
                objectives=means,
                gflops=first.gflops,
                params=first.params,
                collapsed=sum(1 for r in runs if r.collapsed),
            )
        )
    return sorted(out, key=lambda a: (a.stage, a.trials[0]))


def _overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    if a is None or b is None:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def architecture_front(
    architectures: Sequence[ArchitectureResult], objectives: Sequence[str]
) -> list[ArchitectureResult]:
    """The non-dominated architectures (means over runs), by the first cost objective, ties marked."""
    if not architectures:
        return []
    maximize = [OBJECTIVE_DIRECTIONS[n] == "maximize" for n in objectives]
    values = np.array([[a.objectives[n] for n in objectives] for a in architectures], dtype=float)
    mask = pareto_mask(values, maximize)
    front = [a for a, keep in zip(architectures, mask, strict=True) if keep]
    costs = [n for n in objectives if OBJECTIVE_DIRECTIONS[n] == "minimize"]
    front.sort(key=lambda a: tuple(a.objectives[n] for n in costs))
    marked = []
    for member in front:
        # Cheaper-or-equal on every cost objective and not the member itself: these dominate it on cost.
        cheaper = [
            other
            for other in front
            if other is not member and all(other.objectives[n] <= member.objectives[n] for n in costs)
        ]
        tied = next((o for o in cheaper if _overlap(o.interval, member.interval)), None)
        marked.append(replace(member, tied_with=tied.spec_hash if tied else None))
    return marked


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """Welch's 95% interval of mean(a) − mean(b) (Welch-Satterthwaite degrees of freedom); None
    unless both have two values or more."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    diff = statistics.mean(a) - statistics.mean(b)
    if se == 0:
        return (diff, diff)
    dof = (va + vb) ** 2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1)))
    h = t_quantile(0.5 + CONFIDENCE / 2, max(1.0, dof)) * se
    return (diff - h, diff + h)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties), as scipy.stats.spearmanr."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def verdict(records: Sequence[TrialRecord]) -> Verdict:
    """The study's verdict: the confirm stage's architectures when it has any, else the search's."""
    done = complete_records(records)
    objectives = done[0].objectives if done else ("dice", "gflops")
    confirmed = architecture_results(records, CONFIRM_STAGE)
    searched = architecture_results(records, SEARCH_STAGE)
    shown, stage = (confirmed, CONFIRM_STAGE) if confirmed else (searched, SEARCH_STAGE)
    front = architecture_front(shown, objectives)
    by_key: dict[str, ArchitectureResult] = {}
    for a in shown:
        key = twin_key(a.spec)
        if key is not None and not a.has_attention:
            by_key[key] = a
    twins = []
    for member in front:
        twin = by_key.get(twin_key(member.spec) or "")
        if member.has_attention and twin is not None:
            interval = welch_interval(member.dices, twin.dices)
            twins.append(TwinComparison(member, twin, member.mean - twin.mean, interval))
    pairs = [(s.mean, c.mean) for c in confirmed for s in searched if s.spec_hash == c.spec_hash]
    rho = None
    if len(pairs) >= MIN_FIDELITY_PAIRS:
        xs, ys = zip(*pairs, strict=True)
        rho = spearman(xs, ys) if len(set(xs)) > 1 and len(set(ys)) > 1 else None
    return Verdict(
        stage=stage,
        objectives=tuple(objectives),
        architectures=tuple(shown),
        front=tuple(front),
        twins=tuple(twins),
        fidelity=rho,
        fidelity_pairs=len(pairs),
    )
