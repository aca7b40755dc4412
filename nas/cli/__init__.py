"""The ``nas`` command: one module per sub-command, each a thin layer over the Python API."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence

from nas.cli._common import Parser, UsageError, user_errors

#: The sub-commands, in the order ``nas --help`` lists them: each a module of ``nas.cli``.
COMMANDS = ("search", "status", "export", "report", "dashboard", "train", "retrain", "space")


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser of every sub-command, or, when ``argv`` names one, of that one alone: a command
    imports only what it needs (``nas dashboard`` and ``nas status`` need neither torch nor Ray)."""
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = next((w for w in words if not w.startswith("-")), None)
    names = (chosen,) if chosen in COMMANDS else COMMANDS
    parser = Parser(prog="nas", description="Neural-architecture search over attention modules for segmentation.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in names:
        importlib.import_module(f"nas.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        args = build_parser(argv).parse_args(argv)
        code: int = args.handler(args)
        return code
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, user_errors()):
            raise
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "main"]
