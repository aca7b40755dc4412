"""Training one architecture outside a search: ``nas train`` (a baseline, an exported spec) and
``nas retrain`` (the full-budget run with a test-set evaluation that follows every search).

Optionally the network starts from a user-supplied state dict (transfer learning, as in the bilateral
paper): tensors are matched by name and shape, a report says what loaded and what did not, and the
loaded tensors can be frozen for the first epochs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas._errors import ConfigError
from search_spaces import ArchSpec, build_model
from trainers import (
    ModelCost,
    SegmentationData,
    TrainConfig,
    TrainResult,
    collapse_note,
    determinism_note,
    load_data,
    model_cost,
    resolve_device,
    seed_everything,
    train,
)

logger = logging.getLogger(__name__)

ARCH_FILE = "arch.json"
WEIGHTS_FILE = "model.pt"
RESULTS_FILE = "metrics.json"


@dataclass(frozen=True)
class InitReport:
    """What a weights file gave the network: loaded names, and why the others were not."""

    source: str
    loaded: tuple[str, ...]
    shape_mismatch: tuple[str, ...] = ()
    not_in_file: tuple[str, ...] = ()
    not_in_model: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"initialised {len(self.loaded)} tensors from {self.source}"]
        for title, names in (
            ("shape differs, kept the fresh tensor", self.shape_mismatch),
            ("in the model but not the file", self.not_in_file),
            ("in the file but not the model", self.not_in_model),
        ):
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                out.append(f"  {len(names)} {title}: {shown}")
        return out


def load_initial_weights(model: nn.Module, path: str | Path, *, prefix: str = "") -> InitReport:
    """Copy the tensors of a state dict at ``path`` whose names (starting with ``prefix``) and shapes
    match the model's; report the rest. A file that is not a state dict is a ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--init: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file it cannot read
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ConfigError(
            f"--init: {path} is not a readable PyTorch state dict ({type(exc).__name__}: {first})"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"--init: {path} does not hold a state dict (a mapping of names to tensors)")
    own = model.state_dict()
    wanted = {k for k in own if k.startswith(prefix)}
    loaded, mismatch = [], []
    for name in sorted(wanted & set(state)):
        if tuple(state[name].shape) == tuple(own[name].shape):
            own[name] = state[name].to(own[name].dtype)
            loaded.append(name)
        else:
            mismatch.append(name)
    model.load_state_dict(own)
    candidates = {k for k in state if k.startswith(prefix)}
    return InitReport(
        source=str(path),
        loaded=tuple(loaded),
        shape_mismatch=tuple(mismatch),
        not_in_file=tuple(sorted(wanted - set(state))),
        not_in_model=tuple(sorted(candidates - set(own))),
    )


@dataclass
class FitOutcome:
    out_dir: Path
    result: TrainResult
    cost: ModelCost
    data: SegmentationData
    init: InitReport | None = None
    files: list[str] = field(default_factory=list)


def _check_fits(spec: ArchSpec, data: SegmentationData) -> None:
    for name, want, have in (
        ("spatial_dims", data.spatial_dims, spec.spatial_dims),
        ("in_channels", data.in_channels, spec.in_channels),
        ("out_channels", data.num_classes, spec.out_channels),
    ):
        if want != have and not (name == "out_channels" and have == 1 and want == 2):
            raise ConfigError(f"spec.{name}: {have} does not fit the data, which needs {want}")


def fit_architecture(
    spec: ArchSpec,
    data_config: Any,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    init: str | Path | None = None,
    init_prefix: str = "",
    freeze_epochs: int = 0,
    progress: Callable[[str], None] | None = None,
) -> FitOutcome:
    """Train ``spec`` on the data, keep the best weights, evaluate validation and test sets, and write
    ``arch.json``, ``model.pt`` and ``metrics.json`` into ``out_dir``."""
    out = Path(out_dir)
    data = load_data(data_config)
    _check_fits(spec, data)
    seed_everything(train_config.seed)  # the initial weights are the seed's: a retrain reproduces
    model = build_model(spec)
    report = load_initial_weights(model, init, prefix=init_prefix) if init is not None else None
    if report is not None and progress:
        for line in report.lines():
            progress(line)
    frozen = set(report.loaded) if report is not None and freeze_epochs > 0 else set()
    if report is not None and "head.bias" in report.loaded:  # a trained head's bias beats the class prior
        train_config = replace(train_config, head_prior="off")
    cost = model_cost(model, data.input_shape)

    def on_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
        if frozen and epoch == freeze_epochs:
            _set_trainable(model, frozen, True)
            if progress:
                progress(f"unfroze {len(frozen)} initialised tensors after epoch {epoch}")
        if progress:
            progress(
                f"epoch {epoch}/{train_config.epochs}: loss {metrics['loss']:.4f}, "
                f"val Dice {metrics['val_dice']:.4f} (best {metrics['best_dice']:.4f})"
            )

    if frozen:
        _set_trainable(model, frozen, False)
    result = train(model, data, train_config, report=on_epoch)
    out.mkdir(parents=True, exist_ok=True)
    (out / ARCH_FILE).write_text(spec.to_json(indent=2) + "\n")
    torch.save(result.best_state, out / WEIGHTS_FILE)
    summary = {
        "spec_hash": spec.spec_hash(),
        "label": spec.short_label(),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "collapsed": collapse_note(result.history),
        "train_seconds": result.seconds,
        "flops": cost.flops,
        "params": cost.params,
        "input_shape": list(data.input_shape),
        "validation": result.metrics.to_dict() if result.metrics else None,
        "test": result.test_metrics.to_dict() if result.test_metrics else None,
        "history": result.history,
        "data": data_config.to_dict(),
        "train": asdict(train_config),
        "determinism": determinism_note(resolve_device(train_config)),
        "split": {k: list(v) for k, v in (data.split or {}).items()},
        "split_groups": {k: list(v) for k, v in data.split_groups.items()} if data.split_groups else None,
        "init": asdict(report) if report is not None else None,
    }
    (out / RESULTS_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return FitOutcome(out, result, cost, data, report, [ARCH_FILE, WEIGHTS_FILE, RESULTS_FILE])


def _set_trainable(model: nn.Module, names: set[str], trainable: bool) -> None:
    for name, parameter in model.named_parameters():
        if name in names:
            parameter.requires_grad_(trainable)
