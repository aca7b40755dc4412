"""Training one architecture outside a search: ``nas train`` (a baseline, an exported spec) and
``nas retrain`` (the full-budget run with a test-set evaluation that follows every search).

Optionally the network starts from a user-supplied state dict (transfer learning, as in the bilateral
paper): tensors are matched by name and shape, a report says what loaded and what did not, and the
loaded tensors can be frozen for the first epochs. A public checkpoint's own names reach ours through
a registered name map (``torchvision-resnet``: an ImageNet ResNet onto the ``resnet34`` encoder),
chosen by name or recognised from the keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas._errors import ConfigError
from search_spaces import ArchSpec, build_model
from search_spaces._registry import BACKBONES
from studies import check_output_dir
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
class NameMap:
    """How the tensor names of a public checkpoint become this project's module names.

    ``rename(name)`` gives our name, or None for a tensor with no counterpart (a classifier);
    ``detect(keys)`` recognises a state dict written under these names (``--init-map auto``);
    ``input_convs`` are our tensors whose second dimension reads the image channels.
    """

    name: str
    summary: str
    rename: Callable[[str], str | None]
    detect: Callable[[Collection[str]], bool]
    input_convs: tuple[str, ...] = ()


INIT_MAPS: dict[str, NameMap] = {}
#: ``--init-map`` values besides the registered maps: recognise the keys, or take the names as they are.
AUTO, NO_MAP = "auto", "none"


def register_init_map(name_map: NameMap) -> NameMap:
    """Add a name map to the registry (a duplicate name raises)."""
    if name_map.name in INIT_MAPS or name_map.name in (AUTO, NO_MAP):
        raise ValueError(f"init map {name_map.name!r} is already registered")
    INIT_MAPS[name_map.name] = name_map
    return name_map


def init_map_choices() -> tuple[str, ...]:
    """What ``--init-map`` / ``train.init_map`` accept."""
    return (AUTO, NO_MAP, *sorted(INIT_MAPS))


_TORCHVISION_LAYER = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")


def _torchvision_resnet(name: str) -> str | None:
    if name.startswith("fc."):  # the ImageNet classifier: nothing of ours reads 1000 classes
        return None
    if name.startswith(("conv1.", "bn1.")):  # the stem
        return f"encoder.0.{name}"
    match = _TORCHVISION_LAYER.match(name)
    if match:  # layerN.j.(conv1|bn1|conv2|bn2|downsample.0|downsample.1).*
        return f"encoder.{match[1]}.blocks.{match[2]}.{match[3]}"
    return name


register_init_map(
    NameMap(
        name="torchvision-resnet",
        summary="torchvision ResNet-18/34 (conv1, bn1, layer1-4, fc dropped) onto the resnet34 encoder",
        rename=_torchvision_resnet,
        detect=lambda keys: "conv1.weight" in keys and any(k.startswith("layer1.0.") for k in keys),
        input_convs=("encoder.0.conv1.weight",),
    )
)


@dataclass(frozen=True)
class InitReport:
    """What a weights file gave the network: loaded names, and why the others were not."""

    source: str
    loaded: tuple[str, ...]
    shape_mismatch: tuple[str, ...] = ()
    not_in_file: tuple[str, ...] = ()
    not_in_model: tuple[str, ...] = ()
    #: The name map applied (None: the file's names were taken as they are).
    name_map: str | None = None
    #: File tensors the map drops (a classifier), under the file's names.
    dropped: tuple[str, ...] = ()
    #: Loaded tensors whose shape was adapted, each with how (``name: 3 input channels summed into 1``).
    adapted: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        mapped = f" (name map {self.name_map})" if self.name_map else ""
        out = [f"initialised {len(self.loaded)} tensors from {self.source}{mapped}"]
        for title, names in (
            ("adapted", self.adapted),
            ("dropped by the name map", self.dropped),
            ("shape differs, kept the fresh tensor", self.shape_mismatch),
            ("in the model but not the file", self.not_in_file),
            ("in the file but not the model", self.not_in_model),
        ):
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                out.append(f"  {len(names)} {title}: {shown}")
        return out


def read_state_dict(path: str | Path, *, option: str = "--init") -> dict[str, torch.Tensor]:
    """The state dict in a PyTorch file (a bare one, or under ``state_dict``); ``module.`` prefixes
    (DataParallel) are stripped. A missing or unreadable file is a ``ConfigError`` naming ``option``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{option}: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file it cannot read
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ConfigError(
            f"{option}: {path} is not a readable PyTorch state dict ({type(exc).__name__}: {first})"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{option}: {path} does not hold a state dict (a mapping of names to tensors)")
    names = list(state)
    if names and all(n.startswith("module.") for n in names):
        return {n.removeprefix("module."): state[n] for n in names}
    return dict(state)


def resolve_name_map(name: str, keys: Collection[str], *, option: str = "--init-map") -> NameMap | None:
    """The map ``name`` selects: ``auto`` the first registered map that recognises ``keys`` (or none),
    ``none`` no map."""
    if name == NO_MAP:
        return None
    if name == AUTO:
        return next((m for m in INIT_MAPS.values() if m.detect(keys)), None)
    if name not in INIT_MAPS:
        raise ConfigError(f"{option}: {name!r} is not valid; expected one of {', '.join(init_map_choices())}")
    return INIT_MAPS[name]


def _adapt(
    name: str, source: torch.Tensor, target: torch.Tensor, name_map: NameMap | None
) -> tuple[torch.Tensor | None, str]:
    """``source`` reshaped to ``target``'s shape where the usual transfer rules allow, and how."""
    how = []
    if (
        name_map is not None
        and name in name_map.input_convs
        and source.ndim >= 3
        and source.shape[1] != target.shape[1]
    ):
        have, want = int(source.shape[1]), int(target.shape[1])
        if want == 1:  # a grey image: the sum keeps each filter's response to uniform intensity
            source = source.sum(dim=1, keepdim=True)
            how.append(f"{have} input channels summed into 1")
        else:  # timm's rule: repeat the filters over the channels, rescaled to keep the response
            source = source.repeat(1, -(-want // have), *(1,) * (source.ndim - 2))[:, :want] * (have / want)
            how.append(f"{have} input channels repeated to {want}, scaled by {have}/{want}")
    inflatable = name_map is not None and source.ndim + 1 == target.ndim and source.ndim >= 3
    if inflatable and source.shape[:2] == target.shape[:2]:
        depth = int(target.shape[2])
        if tuple(target.shape[3:]) == tuple(source.shape[2:]):  # I3D: a 2D kernel inflated along depth
            source = source.unsqueeze(2).repeat(1, 1, depth, *(1,) * (source.ndim - 2)) / depth
            how.append(f"2D kernel inflated to depth {depth}")
    if tuple(source.shape) != tuple(target.shape):
        return None, ""
    return source, ", ".join(how)


def plan_initial_weights(
    own: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    prefix: str = "",
    name_map: NameMap | None = None,
) -> tuple[InitReport, dict[str, torch.Tensor]]:
    """Which file tensors go to which model tensors (``own``: the model's state dict, shapes only),
    renamed by ``name_map`` and adapted where it allows; nothing is copied yet."""
    renamed: dict[str, torch.Tensor] = {}
    dropped = []
    for key, tensor in state.items():
        ours = name_map.rename(key) if name_map is not None else key
        if ours is None:
            dropped.append(key)
        else:
            renamed[ours] = tensor
    wanted = {k for k in own if k.startswith(prefix)}
    values: dict[str, torch.Tensor] = {}
    mismatch, adapted = [], []
    for name in sorted(wanted & set(renamed)):
        if tuple(renamed[name].shape) == tuple(own[name].shape):
            values[name] = renamed[name]
            continue
        value, how = _adapt(name, renamed[name], own[name], name_map)
        if value is None:
            mismatch.append(name)
        else:
            values[name] = value
            adapted.append(f"{name}: {how}")
    candidates = {k for k in renamed if k.startswith(prefix)}
    report = InitReport(
        source=source,
        loaded=tuple(sorted(values)),
        shape_mismatch=tuple(mismatch),
        not_in_file=tuple(sorted(wanted - set(renamed))),
        not_in_model=tuple(sorted(candidates - set(own))),
        name_map=name_map.name if name_map is not None else None,
        dropped=tuple(sorted(dropped)),
        adapted=tuple(adapted),
    )
    return report, values


def load_initial_weights(
    model: nn.Module, path: str | Path, *, prefix: str = "", name_map: str = AUTO, require: bool = False
) -> InitReport:
    """Copy the tensors of a state dict at ``path`` whose names (starting with ``prefix``, after the
    name map) and shapes match the model's; report the rest. A file that is not a state dict is a
    ``ConfigError``; so is one that gives nothing when ``require`` is set."""
    state = read_state_dict(path)
    chosen = resolve_name_map(name_map, state.keys())
    own = model.state_dict()
    report, values = plan_initial_weights(own, state, source=str(path), prefix=prefix, name_map=chosen)
    if require and not report.loaded:
        raise ConfigError(nothing_matches("--init", str(path), state, own, prefix))
    for name, value in values.items():
        own[name] = value.to(own[name].dtype)
    model.load_state_dict(own)
    return report


def nothing_matches(
    option: str, path: str, state: Mapping[str, Any], own: Collection[str], prefix: str, *, target: str = "the model"
) -> str:
    """The one-line refusal of a weights file that gives ``target`` nothing."""
    theirs = ", ".join(list(state)[:2]) or "no tensors"
    ours = ", ".join([k for k in own if k.startswith(prefix)][:2]) or f"none starting with {prefix!r}"
    return (
        f"{option}: nothing in {path} matches {target} by name and shape (the file has e.g. {theirs}; the model "
        f"{ours}); choose a name map ({', '.join(init_map_choices())}), a prefix or the architecture it was saved from"
    )


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file: which weights a study started its trials from."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class InitSource:
    """Weights every trial of a search starts from (a study file's ``train.init`` and ``train.init_map``)."""

    path: str
    name_map: str = AUTO

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "name_map": self.name_map}


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
    factor = int(BACKBONES.get(spec.backbone).size_multiple(spec.depth))
    sides = data.input_shape[1:]
    if any(side % factor for side in sides):
        raise ConfigError(
            f"data: the network input is {'×'.join(map(str, sides))}, not divisible by {factor} as a "
            f"{spec.depth}-level {spec.backbone} needs; set data.pad_multiple (or data.size / data.patch) "
            f"to a multiple of {factor}"
        )


def fit_architecture(
    spec: ArchSpec,
    data_config: Any,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    init: str | Path | None = None,
    init_prefix: str = "",
    init_map: str = AUTO,
    freeze_epochs: int = 0,
    progress: Callable[[str], None] | None = None,
) -> FitOutcome:
    """Train ``spec`` on the data, keep the best weights, evaluate validation and test sets, and write
    ``arch.json``, ``model.pt`` and ``metrics.json`` into ``out_dir``."""
    out = Path(out_dir)
    check_output_dir(out, option="-o")  # before the training it would otherwise throw away
    data = load_data(data_config)
    _check_fits(spec, data)
    seed_everything(train_config.seed)  # the initial weights are the seed's: a retrain reproduces
    model = build_model(spec)
    report = None
    if init is not None:
        report = load_initial_weights(model, init, prefix=init_prefix, name_map=init_map, require=True)
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
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ARCH_FILE).write_text(spec.to_json(indent=2) + "\n")
        torch.save(result.best_state, out / WEIGHTS_FILE)
    except OSError as exc:
        raise ConfigError(f"-o {out}: cannot be written: {exc.strerror or exc}") from None
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
    try:
        (out / RESULTS_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    except OSError as exc:
        raise ConfigError(f"-o {out}: cannot be written: {exc.strerror or exc}") from None
    return FitOutcome(out, result, cost, data, report, [ARCH_FILE, WEIGHTS_FILE, RESULTS_FILE])


def _set_trainable(model: nn.Module, names: set[str], trainable: bool) -> None:
    for name, parameter in model.named_parameters():
        if name in names:
            parameter.requires_grad_(trainable)
