"""The search space's pre-training memory estimate against the peak measured on the same models.

    .venv/bin/python bench/search_space.py            # 20 random specs of the widest space
    .venv/bin/python bench/search_space.py --quick    # 4 specs (a smoke run)

Random specs of the widest search space (``SearchSpace.widest()``, alternately 2D at 64x64 and 3D at
32x32x32, batch 1) are built; for each, ``trainers.estimate_peak_memory`` (no computation on data)
is compared with the peak measured by ``trainers.measure_peak_memory``: the bytes CPU torch
allocates during one forward+backward pass (profiler allocation events). Goal: every estimate within
±30% of the measured peak. Attention kernels' time and memory are in ``bench/kernels.py``.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _report
import torch
from _report import Headline, Section

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from search_spaces import SampleContext, SearchSpace, build_model, sample_spec  # noqa: E402
from trainers import estimate_peak_memory, measure_peak_memory  # noqa: E402

GOAL = 0.30  # the largest accepted |estimate ÷ measured − 1|


class _SeededTrial:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def memory_rows(count: int) -> list[dict[str, Any]]:
    space = SearchSpace.widest()
    rows = []
    for seed in range(count):
        dims = 2 if seed % 2 == 0 else 3
        spec = sample_spec(_SeededTrial(seed), space, SampleContext(spatial_dims=dims))
        shape = (1, 64, 64) if dims == 2 else (1, 32, 32, 32)
        model = build_model(spec)
        start = time.perf_counter()
        estimate = estimate_peak_memory(model, shape)
        seconds = time.perf_counter() - start
        measured = measure_peak_memory(model, shape)
        rows.append(
            {
                "label": spec.short_label(),
                "shape": "x".join(str(s) for s in shape[1:]),
                "estimate_mb": estimate.peak_bytes / 2**20,
                "measured_mb": measured / 2**20,
                "ratio": estimate.peak_bytes / measured,
                "seconds": seconds,
            }
        )
    return rows


def measure(quick: bool) -> Section:
    mem = memory_rows(4 if quick else 20)
    worst = max(abs(r["ratio"] - 1) for r in mem)
    lines = [
        f"### Memory estimate vs measured peak, {len(mem)} random specs of the widest space",
        "",
        f"Worst deviation: {worst:.0%} (goal ±{GOAL:.0%}). Estimate time is the pre-training cost per spec.",
        "",
        "| spec | input | estimate (MiB) | measured (MiB) | ratio | estimate time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in mem:
        lines.append(
            f"| `{row['label']}` | {row['shape']} | {row['estimate_mb']:.1f} | {row['measured_mb']:.1f} | "
            f"{row['ratio']:.2f} | {row['seconds']:.2f} |"
        )
    lines.append("")
    headlines = [
        Headline(
            area="Search space",
            what=f"pre-training memory estimate against the measured peak, worst of {len(mem)} random specs",
            figure=f"{worst:.0%} off",
            goal=f"within ±{GOAL:.0%}",
            met=worst <= GOAL,
        ),
        Headline(
            area="Search space",
            what="time to estimate one spec's peak memory before training (median)",
            figure=f"{statistics.median(r['seconds'] for r in mem):.2f} s",
        ),
    ]
    return Section(
        title="Search space: memory estimate",
        body="\n".join(lines),
        headlines=headlines,
        versions=(f"torch {torch.__version__}", f"{torch.get_num_threads()} torch threads"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return _report.standalone(measure, "search_space.py", argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
