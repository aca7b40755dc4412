"""Constraints on a candidate's cost, checked on the driver before anything trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas._errors import ConfigError
from search_spaces import ArchSpec, build_model
from trainers import ModelCost, model_cost

#: The constraint Optuna's NSGA-II and TPE samplers read (``Trial.set_constraint``; ≤ 0: feasible):
#: the summed relative excess over every bound.
CONSTRAINT_KEY = "cost"


@dataclass(frozen=True)
class Constraints:
    """Upper bounds on a candidate's cost at the study's input size (batch 1); None: unbounded."""

    max_gflops: float | None = None
    max_params: float | None = None
    max_memory_mb: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_gflops", "max_params", "max_memory_mb"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise ConfigError(f"constraints.{name}: {value!r} is not valid; expected a number > 0 or null")

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_gflops, self.max_params, self.max_memory_mb))

    def check(self, cost: ModelCost) -> tuple[float, str | None]:
        """``(violation, reason)``: the summed relative excess over every bound (0.0 when feasible)
        and a sentence naming each bound broken (None when feasible)."""
        measured = (
            ("GFLOPs", cost.gflops, self.max_gflops, "{:.3g}"),
            ("parameters", float(cost.params), self.max_params, "{:.4g}"),
            ("estimated training peak memory (MiB, batch 1)", cost.peak_memory_mb, self.max_memory_mb, "{:.0f}"),
        )
        violation, broken = 0.0, []
        for what, value, bound, fmt in measured:
            if bound is not None and value > bound:
                violation += value / bound - 1.0
                broken.append(f"{what} {fmt.format(value)} > {fmt.format(bound)}")
        return violation, ("infeasible: " + "; ".join(broken)) if broken else None


@dataclass(frozen=True)
class Screen:
    """What the driver checks of a sampled spec before it trains: its cost against ``constraints``.

    Picklable (Ray checkpoints the searcher). Builds the model on the driver's CPU, counts FLOPs and
    parameters and estimates memory without allocating activations; only when some bound is set.
    """

    constraints: Constraints
    input_shape: tuple[int, ...]

    def __call__(self, spec: dict[str, Any]) -> tuple[ModelCost, float, str | None] | None:
        if not self.constraints.active:
            return None
        cost = model_cost(build_model(ArchSpec.from_dict(spec)), self.input_shape)
        violation, reason = self.constraints.check(cost)
        return cost, violation, reason
