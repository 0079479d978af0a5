"""The ``shipfastsim`` command line.

Subcommands live in their own modules, each with ``register(subparsers)`` that adds
a parser whose ``func(args) -> int`` runs it; `SUBCOMMAND_MODULES` lists them.
Errors are printed as one line (exit status 2 for bad input, 1 otherwise) unless
``--debug`` asks for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "SUBCOMMAND_MODULES", "UsageError", "one_line"]

#: Modules providing ``register(subparsers)``; order is the order in ``--help``.
SUBCOMMAND_MODULES: list[str] = [
    "shipfastsim.commands",
    "shipfastsim.geometry.cli",
    "shipfastsim.plugins.fast_shield.cli",
    "shipfastsim.adapters.cli",
    "shipfastsim.plugins.gan_target.cli",
    "shipfastsim.validation.cli",
]


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def one_line(error: BaseException, hint: bool = True) -> str:
    """The first line of an error's message, unquoted (``str(KeyError("x"))`` is ``'x'``);
    ``hint`` says when there was more."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = text.strip().splitlines()
    if not lines:
        return type(error).__name__
    return lines[0] + (" (run with --debug for the full message)" if hint and len(lines) > 1 else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipfastsim", description="Fast simulation of the SHiP muon background.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("shipfastsim: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one line for the user; --debug for developers
        if args.debug:
            raise
        from shipfastsim.config import ConfigError

        status = 2 if isinstance(error, ConfigError | UsageError | FileNotFoundError) else 1
        print(f"shipfastsim: error: {one_line(error)}", file=sys.stderr)
        for note in getattr(error, "__notes__", []):
            print(f"shipfastsim: {note}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
