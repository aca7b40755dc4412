"""Deployment formats of an exported network: a ``torch.export`` program and an ONNX model, each
checked against the eager network on random inputs before it is kept.

Both are exported with a dynamic batch and, where the architecture allows, dynamic spatial sizes
that are multiples of the network's stride (``size_multiple``). Whether it allows them is found by
trying: an architecture with shape arithmetic the exporter specialises (a Swin window count, say)
either fails to export or gives another output at another size, and then falls back to a dynamic
batch at the study's spatial size. What was written, at which shapes it was checked and the largest
absolute difference from the network go into the export's ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

PROGRAM_FILE = "model.pt2"
ONNX_FILE = "model.onnx"
#: ONNX opset 23 is the first with an ``Attention`` operator: ``scaled_dot_product_attention`` (SA,
#: DANet's PAM, axial attention) exports as one fused node instead of a MatMul/Softmax chain, and
#: onnxruntime runs it. Older opsets are not needed by any registered block.
ONNX_OPSET = 23
#: A format is kept when ``max |format - network| <= ATOL + RTOL * max |network|`` at every check.
ATOL = 1e-4
RTOL = 1e-4


@dataclass
class FormatResult:
    """What became of one format: the file written (None if not), why not, and how it was checked."""

    file: str | None
    reason: str | None = None
    dynamic: list[str] = field(default_factory=list)
    checked_shapes: list[list[int]] = field(default_factory=list)
    max_abs_diff: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "written": self.file is not None,
            **({"reason": self.reason} if self.reason else {}),
            "dynamic": list(self.dynamic),
            "checked_shapes": [list(s) for s in self.checked_shapes],
            "max_abs_diff": self.max_abs_diff,
        }


def stride_of(model: nn.Module) -> int:
    """What every spatial input size of ``model`` must be divisible by (1 if it says nothing)."""
    multiple = getattr(model, "size_multiple", None)
    encoder = getattr(model, "encoder", None)
    if callable(multiple) and encoder is not None:
        return int(multiple(len(encoder)))
    return 1


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress and warn about their own internals; the CLI owns the terminal."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _check_shapes(input_shape: Sequence[int], stride: int, spatial: bool) -> list[tuple[int, ...]]:
    """The inputs a format is checked at: batch 2 at the study's shape, batch 3 at a larger one."""
    channels, sizes = input_shape[0], list(input_shape[1:])
    shapes = [(2, channels, *sizes)]
    shapes.append(
        (3, channels, *(s + stride * (1 + axis) for axis, s in enumerate(sizes))) if spatial else (3, *input_shape)
    )
    return shapes


def _dynamic_shapes(spatial_dims: int, stride: int, spatial: bool) -> tuple[dict[int, Any]]:
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1)}
    if spatial:
        for axis in range(spatial_dims):
            dims[2 + axis] = stride * torch.export.Dim(f"blocks_{axis}", min=1)
    return (dims,)


def _reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _diff(got: torch.Tensor, want: torch.Tensor) -> float:
    if tuple(got.shape) != tuple(want.shape):
        raise ValueError(f"output shape {tuple(got.shape)} instead of the network's {tuple(want.shape)}")
    return float((got.double() - want.double()).abs().max())


def _within(diff: float, want: torch.Tensor) -> bool:
    return diff <= ATOL + RTOL * float(want.abs().max())


#: Programs already exported, by (id of the model, dynamic spatial), and the modes whose program gave
#: wrong outputs: the ONNX export reuses the ``torch.export`` one's instead of tracing the network again.
ProgramCache = dict[tuple[Any, ...], Any]


def _export_program(
    model: nn.Module, input_shape: Sequence[int], spatial: bool, cache: ProgramCache | None = None
) -> torch.export.ExportedProgram:
    key = (id(model), spatial)
    if cache is not None and key in cache:
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]
    example = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0))
    try:
        with _quiet(), torch.no_grad():
            program = torch.export.export(
                model, (example,), dynamic_shapes=_dynamic_shapes(len(input_shape) - 1, stride_of(model), spatial)
            )
    except Exception as exc:
        if cache is not None:
            cache[key] = exc
        raise
    if cache is not None:
        cache[key] = program
    return program


def _verify(run: Any, model: nn.Module, shapes: Sequence[tuple[int, ...]]) -> tuple[float, str | None]:
    """The largest difference of ``run`` from ``model`` over random inputs of ``shapes``, and what failed."""
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(shape, generator=generator)
        want = _reference(model, x)
        try:
            with _quiet(), torch.no_grad():
                got = run(x)
            diff = _diff(got, want)
        except Exception as exc:  # a guard the exporter added, an op the runtime lacks, a wrong shape
            return worst, f"at input {list(shape)}: {_first_line(exc)}"
        worst = max(worst, diff)
        if not _within(diff, want):
            return worst, f"at input {list(shape)} its output differs from the network's by up to {diff:.3g}"
    return worst, None


def _dynamic_names(spatial: bool, stride: int) -> list[str]:
    return ["batch", f"spatial (multiples of {stride})"] if spatial else ["batch"]


def write_program(
    model: nn.Module, input_shape: Sequence[int] | None, target: Path, *, cache: ProgramCache | None = None
) -> FormatResult:
    """Export ``model`` (eval mode) with ``torch.export`` into ``target`` (``.pt2``), checked on random inputs."""
    if not input_shape:
        return FormatResult(None, "the study recorded no input shape to export at")
    model.eval()
    stride = stride_of(model)
    failures: list[str] = []
    for spatial in (True, False):
        what = "dynamic spatial" if spatial else "dynamic batch"
        shapes = _check_shapes(input_shape, stride, spatial)
        try:
            program = _export_program(model, input_shape, spatial, cache)
            with _quiet():
                torch.export.save(program, str(target))
                loaded = torch.export.load(str(target)).module()  # what a user gets: the file, not the object
        except Exception as exc:  # an op or a data-dependent branch torch.export cannot capture or serialise
            target.unlink(missing_ok=True)
            failures.append(f"{what}: {_first_line(exc)}")
            continue
        diff, failed = _verify(loaded, model, shapes)
        if failed:
            target.unlink(missing_ok=True)
            if cache is not None:  # the same program would give ONNX the same wrong sizes: skip it there
                cache[(id(model), spatial, "wrong")] = failed
            failures.append(f"{what}: {failed}")
            continue
        if failures:
            logger.info("torch.export: %s; exported with a dynamic batch only", failures[0])
        return FormatResult(target.name, None, _dynamic_names(spatial, stride), [list(s) for s in shapes], diff)
    return FormatResult(None, "; ".join(failures))


def write_onnx(
    model: nn.Module, input_shape: Sequence[int] | None, target: Path, *, cache: ProgramCache | None = None
) -> FormatResult:
    """Export ``model`` (eval mode) to ONNX (opset ``ONNX_OPSET``, the dynamo exporter) into ``target``,
    checked with onnxruntime against the network on random inputs."""
    if not input_shape:
        return FormatResult(None, "the study recorded no input shape to export at")
    try:
        import onnxruntime
    except ImportError as exc:  # a core dependency; only a broken install lacks it
        return FormatResult(None, f"onnxruntime is not installed ({exc})")
    model.eval()
    stride = stride_of(model)
    failures: list[str] = []
    for spatial in (True, False):
        what = "dynamic spatial" if spatial else "dynamic batch"
        shapes = _check_shapes(input_shape, stride, spatial)
        known = cache.get((id(model), spatial, "wrong")) if cache is not None else None
        if known:
            failures.append(f"{what}: {known} (as a torch.export program)")
            continue
        try:
            program = _export_program(model, input_shape, spatial, cache)
            with _quiet():
                onnx_program = torch.onnx.export(program, dynamo=True, opset_version=ONNX_OPSET, optimize=True)
            assert onnx_program is not None
            session = onnxruntime.InferenceSession(
                onnx_program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # an op without an ONNX translation, or one onnxruntime refuses
            failures.append(f"{what}: {_first_line(exc)}")
            continue
        name = session.get_inputs()[0].name

        def run(x: torch.Tensor, session: Any = session, name: str = name) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

        diff, failed = _verify(run, model, shapes)
        if failed:
            failures.append(f"{what}: {failed}")
            continue
        with _quiet():
            onnx_program.save(str(target))
        if failures:
            logger.info("ONNX: %s; exported with a dynamic batch only", failures[0])
        return FormatResult(target.name, None, _dynamic_names(spatial, stride), [list(s) for s in shapes], diff)
    return FormatResult(None, "; ".join(failures))
