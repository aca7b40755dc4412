"""The ``nas`` command: one module per sub-command, each a thin layer over the Python API."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from nas.cli._common import USER_ERRORS, Parser, UsageError


def build_parser() -> Parser:
    from nas.cli import dashboard, export, report, retrain, search, space, status, train

    parser = Parser(prog="nas", description="Neural-architecture search over attention modules for segmentation.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (search, status, export, report, dashboard, train, retrain, space):
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
        return code
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
