"""Shared CLI plumbing: NAS_* environment defaults, argument types, the user-error path."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from nas._errors import ConfigError
from studies import DEFAULT_STORAGE, StudyError

#: Packages whose error type means "the user asked for something we cannot do", beside ours and
#: the studies' (imported only by the commands that use them: torch comes with them).
_ERROR_TYPES = (("search_spaces", "SpecError"), ("trainers", "DataError"))


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "the user asked for something we cannot do" (one line, exit 2): ours,
    the studies', and those of ``search_spaces`` and ``trainers`` when a command imported them (a
    package that was never imported raised nothing)."""
    found: list[type[Exception]] = [ConfigError, StudyError]
    for module, name in _ERROR_TYPES:
        loaded = sys.modules.get(module)
        if loaded is not None:
            found.append(getattr(loaded, name))
    return tuple(found)


class UsageError(Exception):
    """A command-line mistake; ``main`` prints it as one line and exits 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one readable line rather than usage text."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def env_default(option: str, fallback: Any, convert: Callable[[str], Any] = str) -> Any:
    """The default of ``--option`` from ``NAS_OPTION`` if set, else ``fallback``."""
    name = "NAS_" + option.upper().replace("-", "_")
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return fallback
    try:
        return convert(raw)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise UsageError(f"nas: error: environment variable {name}={raw!r}: {exc}") from None


def _number_type(convert: Callable[[str], Any], allowed: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert`` the text, refuse it unless ``allowed``, naming ``expected``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not allowed(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not valid; expected {expected}")
        return value

    return parse


positive_int = _number_type(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number_type(int, lambda v: v >= 0, "an integer ≥ 0")
non_negative_float = _number_type(float, lambda v: v >= 0, "a number ≥ 0")
positive_float = _number_type(float, lambda v: 0 < v < float("inf"), "a number > 0")
port_number = _number_type(int, lambda v: 0 <= v <= 65535, "a port number 0..65535")


def add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        default=env_default("storage", DEFAULT_STORAGE),
        help=f"SQLAlchemy URL of the study database (env NAS_STORAGE; default {DEFAULT_STORAGE})",
    )


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
