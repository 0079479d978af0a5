"""``shipfastsim tables build``: (re)build the fast-shield step tables from the reference physics.

The materials are those of the geometry (default: the shipped TRY_2025 design); the
file is written under its versioned name (format version and settings hash) into
``--output`` when that is a directory, else to that path.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

__all__ = ["register", "build_command"]


def register(subparsers) -> None:
    """Add ``tables build`` to the ``shipfastsim`` command line."""
    from shipfastsim.plugins.fast_shield import DEFAULT_GEOMETRY, PACKAGE_DIR

    tables = subparsers.add_parser("tables", help="step tables of the fast-shield propagator")
    actions = tables.add_subparsers(dest="tables_command", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="build step tables by sampling the reference physics")
    build.add_argument("--geometry", type=Path, default=DEFAULT_GEOMETRY,
                       help="geometry YAML whose materials to tabulate (default: %(default)s)")
    build.add_argument("--output", type=Path, default=PACKAGE_DIR,
                       help="output file or directory (default: the shipped tables' directory)")
    build.add_argument("--samples", type=int, default=None, help="muons sampled per bin (default: 200000)")
    build.add_argument("--seed", type=int, default=None, help="random seed of the sampling")
    build.set_defaults(func=build_command)


def build_command(args: argparse.Namespace) -> int:
    """Build, save and report; returns the exit status."""
    from shipfastsim.errors import UsageError
    from shipfastsim.geometry import GeometryLookup, load_geometry
    from shipfastsim.plugins.fast_shield.tables import TableSettings, build_tables, save_tables

    lookup = GeometryLookup(load_geometry(args.geometry))
    settings = replace(TableSettings(), materials=tuple((n, float(s)) for n, s in lookup.materials))
    if args.samples is not None:
        if args.samples < 100:
            raise UsageError(f"--samples {args.samples}: at least 100 muons per bin are needed for the quantiles")
        settings = replace(settings, samples=args.samples)
    if args.seed is not None:
        settings = replace(settings, seed=args.seed)
    start = time.perf_counter()
    print(f"building step tables {settings.digest()} for {list(settings.materials)}", file=sys.stderr)
    tables = build_tables(settings, progress=lambda message: print(
        f"  {message} ({time.perf_counter() - start:.0f} s)", file=sys.stderr))
    if args.output.suffix != ".npz":
        args.output.mkdir(parents=True, exist_ok=True)
    path = save_tables(tables, args.output)
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - start:.0f} s)")
    return 0
