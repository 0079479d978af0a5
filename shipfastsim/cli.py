"""The ``shipfastsim`` command line.

Subcommands live in their own modules, each with ``register(subparsers)`` that adds
a parser whose ``func(args) -> int`` runs it; `SUBCOMMAND_MODULES` lists them.
Errors are printed as one line (exit status 2 for bad input, 1 otherwise) unless
``--debug`` asks for the traceback.  This is the top layer: nothing of the package
imports it; the errors it prints live in `shipfastsim.errors`, where the subcommand
modules take them from.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from shipfastsim.errors import ConfigError, UsageError, one_line

__all__ = ["main", "build_parser", "SUBCOMMAND_MODULES"]

#: Modules providing ``register(subparsers)``; order is the order in ``--help``.
SUBCOMMAND_MODULES: list[str] = [
    "shipfastsim.commands",
    "shipfastsim.geometry.cli",
    "shipfastsim.plugins.fast_shield.cli",
    "shipfastsim.adapters.cli",
    "shipfastsim.plugins.gan_target.cli",
    "shipfastsim.validation.cli",
]


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
        status = 2 if isinstance(error, ConfigError | UsageError | FileNotFoundError) else 1
        print(f"shipfastsim: error: {one_line(error)}", file=sys.stderr)
        for note in getattr(error, "__notes__", []):
            print(f"shipfastsim: {note}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
