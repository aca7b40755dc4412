"""The confirm stage: after the search's budget, the front's members and their no-attention twins
are trained again with fresh seeds at the full epoch budget, and the front the user sees is theirs.

Why fresh seeds and only theirs: a search-stage result is on the front partly because its seed was
lucky (it was selected for being high), so its confirmed mean leaves it out. Why twins: "what did
the attention buy" needs the same backbone and widths without it, trained the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from search_spaces import ArchSpec, SampleContext, SearchSpace, replay_spec
from studies import (
    ATTR_SEED,
    ATTR_SPEC_HASH,
    ATTR_STAGE,
    CONFIRM_STAGE,
    SEARCH_STAGE,
    ArchitectureResult,
    TrialRecord,
    architecture_front,
    architecture_results,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfirmPoint:
    """One confirm-stage training: an architecture's sampler parameters and a fresh seed."""

    params: dict[str, Any]
    seed: int
    spec_hash: str
    label: str
    #: ``member`` (on the search's front) or ``twin`` (a member's no-attention twin).
    role: str


def replay(
    space: SearchSpace, context: SampleContext, params: dict[str, Any], *, no_attention: bool = False
) -> tuple[dict[str, Any], ArchSpec]:
    """The parameters ``sample_spec`` asks for, answered from ``params`` (or, with ``no_attention``,
    with every attention choice ``none``), and the spec they give."""

    def pick(name: str, choices: list[Any]) -> Any:
        if no_attention and name in ("attention.block", "extra.block"):
            return "none" if "none" in choices else choices[0]
        value = params.get(name)
        return value if value in choices else choices[0]

    return replay_spec(space, context, pick)


def spread(front: Sequence[ArchitectureResult], members: int) -> list[ArchitectureResult]:
    """``members`` of the front, evenly spaced along its cost order (both ends included)."""
    if members >= len(front):
        return list(front)
    if members == 1:
        return [max(front, key=lambda a: a.mean)]
    step = (len(front) - 1) / (members - 1)
    picked = sorted({round(i * step) for i in range(members)})
    return [front[i] for i in picked]


def confirm_seeds(search_seeds: Sequence[int], count: int) -> list[int]:
    """The first ``count`` non-negative seeds the search did not train with."""
    used, seed = set(search_seeds), 0
    out: list[int] = []
    while len(out) < count:
        if seed not in used:
            out.append(seed)
        seed += 1
    return out


def plan_confirm(
    study: optuna.Study,
    records: Sequence[TrialRecord],
    *,
    space: SearchSpace,
    context: SampleContext,
    objectives: Sequence[str],
    members: int,
    seeds: Sequence[int],
) -> list[ConfirmPoint]:
    """What the confirm stage still has to train: up to ``members`` of the search's front over
    architectures and each one's no-attention twin, with every seed of ``seeds``, less what the
    study already holds for the confirm stage (finished, running or waiting)."""
    if members <= 0:
        return []
    front = architecture_front(architecture_results(records, SEARCH_STAGE), objectives)
    chosen = spread(front, members)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    archs: list[tuple[dict[str, Any], str, str, str]] = []  # params, hash, label, role
    seen: set[str] = set()
    for member in chosen:
        trial = by_number.get(member.trials[0])
        if trial is None:
            continue
        params, spec = replay(space, context, dict(trial.params))
        if spec.spec_hash() != member.spec_hash:
            logger.warning("front member %s cannot be replayed from its parameters; not confirmed", member.label)
            continue
        candidates = [(params, spec, "member")]
        if member.has_attention:
            twin_params, twin = replay(space, context, dict(trial.params), no_attention=True)
            if twin.attention.block == "none" and not twin.extra_attention:
                candidates.append((twin_params, twin, "twin"))
            else:
                logger.warning("the space has no no-attention twin of %s", member.label)
        for p, s, role in candidates:
            if s.spec_hash() not in seen:
                seen.add(s.spec_hash())
                archs.append((p, s.spec_hash(), s.short_label(), role))
    held = {
        (t.user_attrs.get(ATTR_SPEC_HASH), t.user_attrs.get(ATTR_SEED))
        for t in by_number.values()
        if t.user_attrs.get(ATTR_STAGE) == CONFIRM_STAGE and t.state in _HELD
    }
    queued = {
        (_params_key(dict(t.system_attrs.get("fixed_params", t.params))), t.user_attrs.get(ATTR_SEED))
        for t in by_number.values()
        if t.state == TrialState.WAITING and t.user_attrs.get(ATTR_STAGE) == CONFIRM_STAGE
    }
    out = []
    for params, spec_hash, label, role in archs:
        for seed in seeds:
            if (spec_hash, seed) in held or (_params_key(params), seed) in queued:
                continue
            out.append(ConfirmPoint(params=params, seed=seed, spec_hash=spec_hash, label=label, role=role))
    return out


#: Confirm-stage trials that need not be planned again.
_HELD = (TrialState.COMPLETE, TrialState.RUNNING)


def _params_key(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def enqueue_confirm(study: optuna.Study, points: Sequence[ConfirmPoint]) -> None:
    """Enqueue ``points`` as confirm-stage trials (their stage and seed recorded on the trial)."""
    for point in points:
        study.enqueue_trial(
            point.params,
            user_attrs={ATTR_STAGE: CONFIRM_STAGE, ATTR_SEED: point.seed},
            skip_if_exists=False,
        )
