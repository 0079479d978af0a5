"""``shipfastsim geometry show|probe CONFIG``: draw a shield design, or probe points of it.

``show``: two panels, the x-z plane at y = 0 and the y-z plane at x = x_probe
(default 5 cm, inside most cores), coloured by the signed field of each magnet part
(By in the cores and return yokes, Bx in the top/bottom yokes; a symmetric-log
scale so that the 0.03 T of a flux-conserving return yoke shows as well as 1.9 T),
grey for unmagnetised iron and other dense material, with the recording planes and
the decay-vessel aperture marked.

``probe``: material, field and region at the given points, as text or ``--json``
(keys ``point_cm``, ``material``, ``field_T``, ``region``); ``--fields`` adds the
field of every magnet part.

``geant4-check``: builds the geometry in Geant4 (``geant4-shield``) with the overlap
check on every placement and compares Geant4's navigator with ``probe`` (material and
magnet part) at random points; exit status 1 on any overlap or difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register", "show", "probe", "draw_geometry"]


def draw_geometry(geometry_path: str | Path, output: str | Path, x_probe: float = 5.0, nz: int = 1400,
                  nt: int = 500) -> Path:
    """Render the geometry to a PNG; returns the output path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from matplotlib.colors import ListedColormap, SymLogNorm

    from shipfastsim.geometry import GeometryLookup, get_material, load_geometry

    geometry = load_geometry(geometry_path)
    lookup = GeometryLookup(geometry)
    density = torch.tensor([get_material(n).density * s for n, s in lookup.materials])
    z = torch.linspace(geometry.world.z_min, max(p.z for p in geometry.planes) + 50.0, nz, dtype=torch.float64)
    fig, axes = plt.subplots(2, 1, figsize=(14, 8.5), sharex=True)
    extent_t = 350.0
    norm = SymLogNorm(linthresh=0.01, vmin=-2.0, vmax=2.0, base=10)
    image = None
    for ax, plane in zip(axes, ("xz", "yz"), strict=True):
        t = torch.linspace(-extent_t, extent_t, nt, dtype=torch.float64)
        zz, tt = torch.meshgrid(z, t, indexing="xy")
        x, y = (tt, torch.zeros_like(tt)) if plane == "xz" else (torch.full_like(tt, x_probe), tt)
        mat, bx, by, _ = lookup.query(x.reshape(-1), y.reshape(-1), zz.reshape(-1))
        main = torch.where(bx.abs() > by.abs(), bx, by).reshape(tt.shape).numpy()
        dense = (density[mat] > 0.05).reshape(tt.shape).numpy().astype(int)
        extent = (float(z[0]), float(z[-1]), -extent_t, extent_t)
        ax.imshow(dense, origin="lower", aspect="auto", cmap=ListedColormap(["white", "#bbbbbb"]), vmin=0, vmax=1,
                  extent=extent, interpolation="nearest")
        image = ax.imshow(np.ma.masked_where(main == 0, main), origin="lower", aspect="auto", cmap="RdBu_r",
                          norm=norm, extent=extent, interpolation="nearest")
        for p in geometry.planes:
            ax.axvline(p.z, color="k", lw=0.8, ls="--")
            ax.text(p.z, extent_t * 0.9, p.name, rotation=90, ha="right", va="top", fontsize=8)
            if p.has_aperture:
                half = p.aperture_half_x if plane == "xz" else p.aperture_half_y
                ax.plot([p.z, p.z], [-half, half], color="green", lw=3)
        ax.set_ylabel("x [cm] (y = 0)" if plane == "xz" else f"y [cm] (x = {x_probe:g} cm)")
    axes[-1].set_xlabel("z [cm] (FairShip frame)")
    fig.colorbar(image, ax=axes, label="By (cores, return yokes) or Bx (top/bottom yokes) [T]; grey: no field")
    fm = geometry.field_model
    axes[0].set_title(f"{geometry.name}: {Path(geometry_path).name}, field model {fm.model} ({fm.polarity})")
    output = Path(output)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def show(args: argparse.Namespace) -> int:
    output = args.output or Path(args.config).with_suffix(".png").name
    path = draw_geometry(args.config, output, x_probe=args.x_probe)
    print(f"wrote {path}")
    return 0


def probe(args: argparse.Namespace) -> int:
    from shipfastsim.geometry import GeometryError, load_geometry
    from shipfastsim.geometry.probe import field_table, probe_points

    try:
        geometry = load_geometry(args.config)
    except (GeometryError, OSError) as error:
        from shipfastsim.errors import UsageError

        raise UsageError(str(error)) from None
    rows = probe_points(geometry, args.point or [])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        x, y, z = row["point_cm"]
        bx, by, bz = row["field_T"]
        print(f"({x:9.3f}, {y:9.3f}, {z:9.3f}) cm  {row['material']:9} B = ({bx:+.4f}, {by:+.4f}, {bz:+.4f}) T  "
              f"{row['region']}")
    if args.fields or not rows:
        print(field_table(geometry))
    return 0


def geant4_check(args: argparse.Namespace) -> int:
    from shipfastsim.geometry import GeometryError, load_geometry

    try:
        geometry = load_geometry(args.config)
        from shipfastsim.plugins.geant4_shield.navigator import check_geometry
    except (GeometryError, OSError, ImportError) as error:
        from shipfastsim.errors import UsageError

        raise UsageError(str(error)) from None
    report = check_geometry(geometry, n_points=args.points, seed=args.seed)
    print(report.summary())
    return 0 if report.ok else 1


def register(subparsers) -> None:
    """Add the ``geometry`` command with its ``show`` and ``probe`` subcommands."""
    parser = subparsers.add_parser("geometry", help="inspect shield geometry files")
    sub = parser.add_subparsers(dest="geometry_command", required=True, metavar="ACTION")
    show_parser = sub.add_parser("show", help="draw the shield in the x-z and y-z planes (PNG)")
    show_parser.add_argument("config", help="geometry YAML file")
    show_parser.add_argument("--output", "-o", help="PNG file to write (default: <config name>.png)")
    show_parser.add_argument("--x-probe", type=float, default=5.0, help="x of the y-z slice [cm]")
    show_parser.set_defaults(func=show)
    probe_parser = sub.add_parser("probe", help="material, field and region at points of the geometry")
    probe_parser.add_argument("config", help="geometry YAML file")
    probe_parser.add_argument("--point", nargs=3, type=float, action="append", metavar=("X", "Y", "Z"),
                              help="a point in cm, FairShip frame (repeat for more points)")
    probe_parser.add_argument("--json", action="store_true", help="print a JSON list, one object per point")
    probe_parser.add_argument("--fields", action="store_true", help="also print the field of every magnet part")
    probe_parser.set_defaults(func=probe)
    check_parser = sub.add_parser("geant4-check", help="build the geometry in Geant4: overlap check, and Geant4's "
                                  "navigator against probe (material, magnet part) at random points")
    check_parser.add_argument("config", help="geometry YAML file")
    check_parser.add_argument("--points", type=int, default=20000, help="random points to compare (default 20000)")
    check_parser.add_argument("--seed", type=int, default=0, help="seed of the random points")
    check_parser.set_defaults(func=geant4_check)
