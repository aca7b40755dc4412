"""Exporting a trial: its architecture, trained weights and a model card, ready to rebuild."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from studies._bundle import BUNDLE_DIR, study_tta, write_bundle
from studies._bundle import bundle_clahe as bundle_clahe  # re-exported by studies (the bundle calls it)
from studies._errors import ExportError
from studies._formats import ONNX_FILE, ONNX_OPSET, PROGRAM_FILE, FormatResult, write_onnx, write_program
from studies._nnunet import nnunet_card, write_nnunet
from studies._records import TrialRecord, record_from_trial, trial_records
from studies._verdict import architecture_results, verdict
from studies._weights import pruned_weights

ARCH_FILE = "arch.json"
WEIGHTS_FILE = "model.pt"
CARD_FILE = "MODEL_CARD.md"
METRICS_FILE = "metrics.json"
TORCHSCRIPT_FILE = "model.ts"
MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


def _torchscript(spec: dict[str, Any], weights: Path, input_shape: Any, target: Path) -> str | None:
    """Trace the trained network at the study's input shape into ``target``; checks that the traced
    module gives the eager module's output on a fresh input. Returns why it could not, or None."""
    import torch

    from search_spaces import ArchSpec, build_model

    if not input_shape:
        return "the study recorded no input shape to trace at"
    model = build_model(ArchSpec.from_dict(spec))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    generator = torch.Generator().manual_seed(0)
    example, check = (torch.randn((1, *input_shape), generator=generator) for _ in range(2))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic
            traced = torch.jit.trace(model, example)
            if not torch.allclose(traced(check), model(check), rtol=1e-4, atol=1e-5):
                return "the traced module's output differs from the network's"
    except Exception as exc:  # an op the tracer cannot record
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    torch.jit.save(traced, str(target))
    return None


def _find_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.number == number:
            return trial
    numbers = [t.number for t in trials]
    span = f"0..{max(numbers)}" if numbers else "none"
    raise ExportError(f"--trial {number}: study {study.study_name!r} has no such trial (trials: {span})")


def _tta_line(tta: str) -> str:
    if tta == "flips":
        return (
            "- test-time augmentation: flips (every metric is of the mean class probabilities over every "
            "combination of flipped spatial axes, as the bundle's inference computes them)\n"
        )
    return "- test-time augmentation: none (one forward pass per image)\n"


def _metrics_lines(record: TrialRecord) -> str:
    """The validation metrics of the best weights as a Markdown list (empty when none were recorded)."""
    mean = (record.metrics or {}).get("mean")
    if not mean:
        return ""
    parts = ", ".join(f"{name} {value:.4f}" for name, value in mean.items() if isinstance(value, int | float))
    return (
        "- all validation metrics (mean over foreground classes; miou also counts the background; HD95 in "
        f"voxels, hd95_mm in the images' spacing units): {parts}\n"
    )


def _torchscript_lines(shape: Any, traced: str | None) -> str:
    if traced is not None:
        return f"No TorchScript module was written ({traced}).\n"
    return (
        f"or, without this package, the traced TorchScript module (traced at input {shape}):\n"
        f'```python\nmodel = torch.jit.load("{TORCHSCRIPT_FILE}")\n```\n'
    )


def architecture_summary(records: Sequence[TrialRecord], record: TrialRecord) -> dict[str, Any] | None:
    """What the study's evidence says of ``record``'s architecture (``studies.verdict``): its Dice as
    mean ± sd over its runs with the 95% interval and n, in the stage the verdict shows (the confirm
    stage when it ran, else the search), and whether it is on the front over architectures or tied."""
    result = verdict(records)
    found = [a for a in result.architectures if a.spec_hash == record.spec_hash]
    if not found:  # not in the stage shown (a search-stage member the confirm stage did not retrain)
        found = [a for a in architecture_results(records) if a.spec_hash == record.spec_hash]
    if not found:
        return None
    arch = found[0]
    front = {a.spec_hash: a for a in result.front} if arch.stage == result.stage else {}
    member = front.get(arch.spec_hash)
    return {
        "stage": arch.stage,
        "trials": list(arch.trials),
        "n": arch.n,
        "dice_mean": arch.mean,
        "dice_sd": arch.sd,
        "dice_interval_95": list(arch.interval) if arch.interval else None,
        "on_front": member is not None,
        "tied_with_trial": (
            next(a.trials[0] for a in result.front if a.spec_hash == member.tied_with)
            if member is not None and member.tied_with is not None
            else None
        ),
    }


def _architecture_lines(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return ""
    line = f"- over its {summary['n']} run(s) ({summary['stage']} stage, trials {summary['trials']}): "
    line += f"Dice {summary['dice_mean']:.4f}"
    if summary["dice_sd"] is not None:
        lo, hi = summary["dice_interval_95"]
        line += f" ± {summary['dice_sd']:.4f} (sd), 95% t-interval [{lo:.4f}, {hi:.4f}]"
    line += "; on the front over architectures" if summary["on_front"] else "; not on the front over architectures"
    if summary["tied_with_trial"] is not None:
        line += f", tied with the cheaper trial {summary['tied_with_trial']} (intervals overlap)"
    return line + "\n"


def _model_card(
    study: optuna.Study,
    record: TrialRecord,
    traced: str | None,
    formats: str = "",
    summary: dict[str, Any] | None = None,
) -> str:
    attrs = study.user_attrs
    dice, gflops = record.values or (float("nan"), float("nan"))
    data = json.dumps(attrs.get("data", {}), sort_keys=True)
    train = json.dumps(attrs.get("train", {}), sort_keys=True)
    shape = attrs.get("input_shape")
    return f"""# Model card: {record.label or "trial " + str(record.number)}

Exported from study `{study.study_name}`, trial {record.number}, by attention-nas.

## Architecture
- spec hash: `{record.spec_hash}`
- summary: {record.label}
- full spec: `{ARCH_FILE}` (rebuild with `search_spaces.build_model(ArchSpec.from_json(...))`)

## Results (validation split of the study's data)
- Dice (best epoch {record.best_epoch} of {record.epochs}): {dice:.6f}
{_architecture_lines(summary)}- Cost: {gflops:.4f} GFLOPs forward at input {shape} (FLOPs = 2 × multiply-adds, batch 1,
  attention matmuls included), {record.params} trainable parameters

{_tta_line(study_tta(attrs))}{_metrics_lines(record)}
## Data and training
- data: `{data}`
- training: `{train}`

## Use
```python
import json, torch
from search_spaces import ArchSpec, build_model

spec = ArchSpec.from_json(open("{ARCH_FILE}").read())
model = build_model(spec)
model.load_state_dict(torch.load("{WEIGHTS_FILE}", map_location="cpu"))
model.eval()
```
{_torchscript_lines(shape, traced)}
For deployment without this package (`x`: a float32 tensor of shape (batch, {shape[0] if shape else "C"}, ...), z-scored
per image as the study's data was):
{formats}
Reproducibility: `{MANIFEST_FILE}` holds the library versions, device and determinism flags, the data split,
the seeds and the spec hash.

As a MONAI bundle (`{BUNDLE_DIR}/`: `configs/metadata.json`, `configs/inference.json`, `models/model.pt`):
```
cd {BUNDLE_DIR} && python -m monai.bundle run --config_file configs/inference.json --dataset_dir IMAGES
```

To train it at full budget on your data, retrain this architecture (`nas retrain`) rather than reusing
search-budget weights.
"""


def check_output_dir(path: str | Path, *, option: str = "-o") -> Path:
    """Check, before any work is done, that directory ``path`` can be created or written into.

    Returns the nearest existing directory at or above ``path`` (where a temporary folder on the same
    file system can be made). Refuses with one line naming the path: a file where a directory is
    expected, or a location that cannot be written. Writes nothing that stays behind."""
    target = Path(path)
    existing = target
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise ExportError(f"{option} {target}: {existing} is a broken symbolic link; expected a directory")
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == target else f"cannot be created: {existing} is a file"
        raise ExportError(f"{option} {target}: {what}; expected a directory (or a path where one can be made)")
    try:
        probe = tempfile.mkdtemp(prefix=".nas-write-check-", dir=existing)
    except OSError as exc:
        where = "" if existing == target else f" (in {existing})"
        raise ExportError(f"{option} {target}: cannot be written{where}: {exc.strerror or exc}") from None
    os.rmdir(probe)
    return existing


def _check_architecture(number: int, spec: dict[str, Any], weights: Path) -> None:
    """The recorded spec builds a network and the recorded weights load into it, or an ExportError."""
    import torch

    from search_spaces import ArchSpec, SpecError, build_model

    try:
        model = build_model(ArchSpec.from_dict(spec))
    except SpecError as exc:
        raise ExportError(f"--trial {number}: its recorded architecture is not valid ({exc})") from None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # unreadable, not a state dict, or tensors of other shapes
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"--trial {number}: its weights {weights} do not load into its architecture ({reason[:200]})"
        ) from None


def _move_into_place(staged: Path, target: Path) -> None:
    """Put the finished export ``staged`` at ``target``: a rename when ``target`` is new; into an
    existing (empty, or ``--overwrite``) directory, each entry replaces the one of its name."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        return
    for item in sorted(staged.iterdir()):
        old = target / item.name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
        os.replace(item, old)
    staged.rmdir()


def export_trial(
    study: optuna.Study, number: int, out_dir: str | Path, *, overwrite: bool = False, nnunet: bool = False
) -> Path:
    """Write ``arch.json``, ``model.pt``, ``model.ts``, ``model.pt2`` (``torch.export``), ``model.onnx``,
    ``metrics.json``, ``manifest.json``, a model card and a MONAI bundle (``bundle/``) for trial
    ``number``; with ``nnunet``, also an nnU-Net v2 trainer (``nnunet/``).

    Only COMPLETE trials with recorded weights can be exported. An existing non-empty ``out_dir``
    is refused unless ``overwrite`` is set. Everything is checked first and written into a temporary
    folder beside ``out_dir`` that is moved into place only once complete: a refused or failed export
    writes nothing and leaves a previous export as it was.
    """
    record = record_from_trial(_find_trial(study, number))
    if record.state != "COMPLETE":
        raise ExportError(f"--trial {number}: trial is {record.state}; only COMPLETE trials can be exported")
    if record.spec is None:
        raise ExportError(f"--trial {number}: the trial recorded no architecture spec")
    if number in pruned_weights(study):
        raise ExportError(
            f"--trial {number}: its weights were deleted by the search's keep policy (only the Pareto set and "
            "the best trials keep weights; see --keep-weights); retrain its arch.json with nas train instead"
        )
    weights = Path(record.weights_path) if record.weights_path else None
    if weights is None or not weights.is_file():
        raise ExportError(f"--trial {number}: trained weights not found (expected {record.weights_path})")
    if not isinstance(record.spec, Mapping):
        raise ExportError(f"--trial {number}: its recorded architecture is not a JSON object")
    _check_architecture(number, dict(record.spec), weights)
    target = Path(out_dir)
    base = check_output_dir(target, option="-o")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ExportError(f"output directory {target} exists and is not empty (pass --overwrite to replace it)")
    staged = base / f".nas-export-{uuid.uuid4().hex[:12]}"  # mkdir, unlike mkdtemp, keeps the umask's mode
    try:
        staged.mkdir()
    except OSError as exc:
        raise ExportError(f"-o {target}: cannot be written: {exc.strerror or exc}") from None
    try:
        _write_export(study, record, weights, staged, nnunet=nnunet)
        _move_into_place(staged, target)
    except OSError as exc:
        raise ExportError(f"-o {target}: cannot be written: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return target


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for package in (
        "attention-nas",
        "torch",
        "monai",
        "numpy",
        "optuna",
        "ray",
        "onnx",
        "onnxruntime",
        "onnxscript",
        "nibabel",
        "pillow",
        "scikit-image",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def reproducibility_manifest(study: optuna.Study, record: TrialRecord) -> dict[str, Any]:
    """What a reviewer needs to rerun a trial: versions, device and determinism, data split, seeds,
    the study's command (when it recorded one) and the spec's hash. Each part says where it is missing."""
    import platform
    import sys

    import torch

    attrs = dict(study.user_attrs)
    train = attrs.get("train") if isinstance(attrs.get("train"), dict) else {}
    data = attrs.get("data") if isinstance(attrs.get("data"), dict) else {}
    assert isinstance(train, dict) and isinstance(data, dict)
    command = attrs.get("command") or attrs.get("argv")
    split = attrs.get("split")
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "study": study.study_name,
        "trial": record.number,
        "spec_hash": record.spec_hash,
        "command": command
        if command
        else {
            "recorded": False,
            "note": "the study recorded no command line; its full configuration is below (data, train, space, "
            "search), from which `nas search` with the same study file reproduces it",
        },
        "export_command": f"nas export {study.study_name} --trial {record.number}",
        "search": {key: attrs.get(key) for key in ("sampler", "objectives", "trial_budget", "fidelity", "replicates")},
        "space": attrs.get("space"),
        "data": data,
        "train": train,
        "input_shape": attrs.get("input_shape"),
        "split": split
        if split
        else {
            "recorded": False,
            "note": f"data kind {data.get('kind', 'unknown')!r} recorded no case split: synthetic data is generated "
            "from data.seed, so the same config gives the same images",
        },
        "split_groups": attrs.get("split_groups"),
        "seeds": {
            "search": attrs.get("seed"),
            "data": data.get("seed"),
            "train": train.get("seed"),
            "trial": record.seed,
        },
        "device": {
            "trained_on": train.get("device", "unknown"),
            "determinism": attrs.get("determinism", "not recorded"),
            "threads_per_trial": train.get("threads_per_trial"),
        },
        "export_environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "cuda_available": torch.cuda.is_available(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "libraries": _library_versions(),
        },
    }


def _format_lines(program: FormatResult, onnx: FormatResult) -> str:
    lines = []
    if program.file:
        lines.append(
            f"- `{PROGRAM_FILE}` (`torch.export`, dynamic {', '.join(program.dynamic)}; max abs difference from "
            f"the network {program.max_abs_diff:.2g}):\n"
            f'  ```python\n  model = torch.export.load("{PROGRAM_FILE}").module()\n  logits = model(x)\n  ```\n'
        )
    else:
        lines.append(f"- no `{PROGRAM_FILE}` was written ({program.reason})\n")
    if onnx.file:
        lines.append(
            f"- `{ONNX_FILE}` (ONNX opset {ONNX_OPSET}, dynamic {', '.join(onnx.dynamic)}; max abs difference from "
            f"the network in onnxruntime {onnx.max_abs_diff:.2g}):\n"
            f'  ```python\n  import onnxruntime\n  session = onnxruntime.InferenceSession("{ONNX_FILE}")\n'
            "  logits = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]\n  ```\n"
        )
    else:
        lines.append(f"- no `{ONNX_FILE}` was written ({onnx.reason})\n")
    return "".join(lines)


def _write_export(
    study: optuna.Study, record: TrialRecord, weights: Path, target: Path, *, nnunet: bool = False
) -> None:
    import torch

    from search_spaces import ArchSpec, build_model

    assert record.spec is not None
    attrs = dict(study.user_attrs)
    input_shape = attrs.get("input_shape")
    (target / ARCH_FILE).write_text(json.dumps(record.spec, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(weights, target / WEIGHTS_FILE)
    traced = _torchscript(dict(record.spec), weights, input_shape, target / TORCHSCRIPT_FILE)
    model = build_model(ArchSpec.from_dict(dict(record.spec)))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    cache: dict[tuple[Any, ...], Any] = {}
    program = write_program(model, input_shape, target / PROGRAM_FILE, cache=cache)
    onnx = write_onnx(model, input_shape, target / ONNX_FILE, cache=cache)
    summary = architecture_summary(trial_records(study), record)
    metrics: dict[str, Any] = {
        "study": study.study_name,
        "trial": record.number,
        "spec_hash": record.spec_hash,
        "dice": record.dice,
        "gflops": record.gflops,
        "flops": record.flops,
        "params": record.params,
        "best_epoch": record.best_epoch,
        "epochs": record.epochs,
        "history": list(record.history),
        "validation_metrics": record.metrics,
        "data": attrs.get("data"),
        "train": attrs.get("train"),
        "input_shape": input_shape,
        "tta": study_tta(attrs),
        "torchscript": TORCHSCRIPT_FILE if traced is None else f"not written: {traced}",
        "torch_export": program.to_dict(),
        "onnx": {**onnx.to_dict(), "opset": ONNX_OPSET},
        "monai_bundle": BUNDLE_DIR,
        "manifest": MANIFEST_FILE,
        "architecture": summary,
    }
    if nnunet:
        metrics["nnunet"] = write_nnunet(target, study.study_name, record)
    write_bundle(
        target,
        study.study_name,
        record.number,
        record,
        attrs,
        weights,
        program=target / PROGRAM_FILE if program.file else None,
        torchscript=target / TORCHSCRIPT_FILE if traced is None else None,
    )
    (target / MANIFEST_FILE).write_text(
        json.dumps(reproducibility_manifest(study, record), indent=2, sort_keys=True) + "\n"
    )
    (target / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    card = _model_card(study, record, traced, _format_lines(program, onnx), summary)
    if nnunet:
        card += nnunet_card(study.study_name, record)
    (target / CARD_FILE).write_text(card)
