"""``shipfastsim tables build``: (re)build the fast-shield step tables from the reference physics or Geant4.

The materials are those of the geometry (default: the default geometry, TRY_2026); the
file is written under its versioned name (format version and settings hash, which
includes the physics) into ``--output`` when that is a directory, else to that path.
``--physics geant4`` samples Geant4 steps (`shipfastsim.plugins.geant4_shield.step_tables`)
on ``--workers`` processes at the production cut ``--cut``.
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
    build = actions.add_parser("build", help="build step tables by sampling the reference physics or Geant4")
    build.add_argument("--geometry", type=Path, default=DEFAULT_GEOMETRY,
                       help="geometry YAML whose materials to tabulate (default: %(default)s)")
    build.add_argument("--output", type=Path, default=PACKAGE_DIR,
                       help="output file or directory (default: the shipped tables' directory)")
    build.add_argument("--physics", choices=("reference", "geant4"), default="reference",
                       help="where the steps come from: the reference transport's physics, or Geant4 "
                            "(geant4-shield's physics) (default: %(default)s)")
    build.add_argument("--cut", type=float, default=10.0,
                       help="Geant4 production cut [cm] (--physics geant4; default: %(default)s)")
    build.add_argument("--workers", type=int, default=2, help="processes (--physics geant4; default: %(default)s)")
    build.add_argument("--samples", type=int, default=None,
                       help="muons sampled per bin (default: 200000; with --physics geant4 each muon serves "
                            "every step length of its momentum)")
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
    if args.physics == "geant4":
        if args.cut <= 0 or args.workers < 1:
            raise UsageError(f"--cut {args.cut} and --workers {args.workers}: both must be positive")
        settings = replace(settings, physics="geant4", geant4_cut=float(args.cut))
    start = time.perf_counter()
    print(f"building step tables {settings.digest()} ({args.physics}) for {list(settings.materials)}",
          file=sys.stderr)

    def progress(message: str) -> None:
        print(f"  {message} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    if args.physics == "geant4":
        try:
            from shipfastsim.plugins.geant4_shield.step_tables import build_geant4_tables
        except ImportError as error:
            raise UsageError(str(error)) from None
        tables = build_geant4_tables(settings, workers=args.workers, progress=progress)
    else:
        tables = build_tables(settings, progress=progress)
    if args.output.suffix != ".npz":
        args.output.mkdir(parents=True, exist_ok=True)
    path = save_tables(tables, args.output)
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - start:.0f} s)")
    return 0
