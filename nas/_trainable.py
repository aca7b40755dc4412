"""The function each Ray Tune trial runs: build, count, train, keep the best weights."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray import tune

from nas._fit import InitSource, load_initial_weights
from search_spaces import ArchSpec, build_model
from trainers import (
    SegmentationData,
    TrainConfig,
    collapse_note,
    measure_latency,
    measure_peak_memory,
    model_cost,
    seed_everything,
    train,
)

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "best.pt"
#: Next to a trial's weights when the study starts every trial from ``train.init``: what it loaded.
INIT_NAME = "init.json"


def weights_path(artifact_dir: str | Path, trial_number: int) -> Path:
    """Where trial ``trial_number``'s best weights are kept."""
    return Path(artifact_dir) / "trials" / f"{trial_number:05d}" / WEIGHTS_NAME


def run_trial(
    config: dict[str, Any],
    *,
    data: SegmentationData,
    train_config: TrainConfig,
    artifact_dir: str,
    threads: int,
    init: InitSource | None = None,
) -> None:
    """Train the spec in ``config['spec']`` and report to Tune after every epoch.

    The last report carries ``complete=True`` and the objectives. An exception inside the trial is
    reported as ``failed=True`` with its text, so the study records why it failed. ``config['seed']``,
    when the study trains replicates, overrides the training seed. With ``init`` the network starts
    from those weights (after its seeded initialisation), and ``init.json`` beside the trial's
    weights records what loaded.
    """
    entered = time.time()  # wall clock: the driver compares it with when the trial was asked for
    clock = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock
        clock = now

    torch.set_num_threads(threads)
    number = int(config["trial_number"])
    try:
        spec = ArchSpec.from_dict(config["spec"])
        if "seed" in config:
            train_config = dataclasses.replace(train_config, seed=int(config["seed"]))
        seed_everything(train_config.seed)  # the initial weights are the seed's, in any worker
        model = build_model(spec)
        if init is not None:
            loaded = load_initial_weights(model, init.path, name_map=init.name_map)
            if "head.bias" in loaded.loaded:  # a trained head's bias beats the class prior
                train_config = dataclasses.replace(train_config, head_prior="off")
            record = weights_path(artifact_dir, number).with_name(INIT_NAME)
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(dataclasses.asdict(loaded), indent=2) + "\n")
            logger.info("trial %d: %s", number, loaded.lines()[0])
        lap("build")
        cost = model_cost(model, data.input_shape)
        base = {
            "gflops": cost.gflops,
            "flops": cost.flops,
            "params": cost.params,
            "peak_memory_mb": cost.peak_memory_mb,
            "complete": False,
            "node_id": _node_id(),
            # Every objective the searcher may optimise must be in every result (Tune checks):
            # latency and memory are measured after training, NaN until then.
            "latency": float("nan"),
            "memory": float("nan"),
        }

        def report(epoch: int, metrics: Any) -> None:
            tune.report({**base, "epoch": epoch, "dice": metrics["best_dice"], **metrics})

        lap("cost")
        result = train(model, data, train_config, report=report)
        phases.update(result.phases)
        clock = time.perf_counter()
        measured = _measured_costs(model, data.input_shape, lap)
        target = weights_path(artifact_dir, number)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(result.best_state, target)
        lap("save")
        tune.report(
            {
                **base,
                "complete": True,
                "epoch": train_config.epochs,
                "dice": result.best_dice,
                # The metric ASHA ranks on must be in every result: the last epoch's validation Dice.
                "val_dice": result.history[-1]["val_dice"] if result.history else result.best_dice,
                "best_epoch": result.best_epoch,
                "weights_path": str(target),
                "val_dice_history": [h["val_dice"] for h in result.history],
                "loss_history": [h["loss"] for h in result.history],
                "train_seconds": result.seconds,
                "collapsed": collapse_note(result.history) or "",
                **measured,
                "latency": measured["latency_ms"],
                "memory": measured["measured_memory_mb"],
                # JSON text: Tune flattens nested dicts in results, the searcher wants the structure.
                "val_metrics_json": json.dumps(result.metrics.to_dict() if result.metrics else None),
                "test_metrics_json": json.dumps(result.test_metrics.to_dict() if result.test_metrics else None),
                # Where the trial's time went (seconds), and when it ran (wall clock, for the driver).
                "phases_json": json.dumps({**phases, "entered_at": entered, "reported_at": time.time()}),
            }
        )
    except Exception as exc:
        logger.warning("trial %d failed: %s", number, exc)
        tail = traceback.format_exc(limit=3)
        # Tune checks that every result names the objectives; NaN marks them as absent.
        tune.report(
            {
                **{name: float("nan") for name in ("dice", "gflops", "params", "latency", "memory", "val_dice")},
                "failed": True,
                "complete": False,
                "error": f"{type(exc).__name__}: {exc}\n{tail}",
            }
        )


def _node_id() -> str:
    """The Ray node this trial runs on (its id, unique across a cluster even on one host)."""
    import ray

    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside a Ray worker (tests calling run_trial directly)
        return ""


def _measured_costs(
    model: torch.nn.Module, input_shape: tuple[int, ...], lap: Callable[[str], None] = lambda name: None
) -> dict[str, float]:
    """Measured, not estimated: forward latency at batch 1 and the peak memory of one training step
    (on CPU by the profiler's allocation events; on CUDA the allocator's peak during training).
    ``lap(name)`` is called after each measurement (the trial's phase clock)."""
    out = {"latency_ms": 1000 * measure_latency(model, input_shape)}
    lap("latency")
    param = next(model.parameters(), None)
    if param is not None and param.device.type == "cuda":
        out["measured_memory_mb"] = torch.cuda.max_memory_allocated(param.device) / 2**20
    else:
        out["measured_memory_mb"] = measure_peak_memory(model, input_shape) / 2**20
    lap("peak_memory")
    return out
