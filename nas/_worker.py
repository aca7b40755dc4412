"""What a trial's worker process imports before it is given a trial.

When ``nas search`` starts its own Ray runtime it names this module in Ray's
``preload_python_modules``: the workers Ray starts with the runtime import it while the driver is
still opening the study, so the first trial of each slot starts at once instead of paying these
imports inside its trial slot. Measured on 2 cores (``bench/orchestration.py``): the
first two trials of a search started 8.7 s after they were asked for without it.

A cluster's nodes get the same with ``RAY_preload_python_modules=nas._worker ray start ...``.
"""

from __future__ import annotations

# The first FakeTensorMode (FLOP counting and the memory estimate, before every trial trains)
# imports torch._dynamo: ~2 s, once per process.
import torch._dynamo  # noqa: F401

# The trial function and everything it imports: torch, MONAI, the search space, the trainer.
import nas._trainable  # noqa: F401
