"""``shipfastsim geometry show CONFIG [--output PNG]``: draw a shield design.

Two panels: the x-z plane at y = 0 and the y-z plane at x = x_probe (default 5 cm,
inside most cores), coloured by the field component that dominates each region
(By in the cores and return yokes, Bx in the top/bottom yokes), red for positive and
blue for negative; grey for unmagnetised iron and other dense material, with the
recording planes and the decay-vessel aperture marked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "show", "draw_geometry"]


def draw_geometry(geometry_path: str | Path, output: str | Path, x_probe: float = 5.0, nz: int = 1400,
                  nt: int = 500) -> Path:
    """Render the geometry to a PNG; returns the output path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.colors import ListedColormap

    from shipfastsim.geometry import GeometryLookup, get_material, load_geometry

    geometry = load_geometry(geometry_path)
    lookup = GeometryLookup(geometry)
    density = torch.tensor([get_material(n).density * s for n, s in lookup.materials])
    z = torch.linspace(geometry.world.z_min, max(p.z for p in geometry.planes) + 50.0, nz, dtype=torch.float64)
    fig, axes = plt.subplots(2, 1, figsize=(14, 8), sharex=True)
    cmap = ListedColormap(["white", "#bbbbbb", "#d62728", "#1f77b4"])
    extent_t = 350.0
    for ax, plane in zip(axes, ("xz", "yz"), strict=True):
        t = torch.linspace(-extent_t, extent_t, nt, dtype=torch.float64)
        zz, tt = torch.meshgrid(z, t, indexing="xy")
        if plane == "xz":
            x, y = tt, torch.zeros_like(tt)
        else:
            x, y = torch.full_like(tt, x_probe), tt
        mat, bx, by, _ = lookup.query(x.reshape(-1), y.reshape(-1), zz.reshape(-1))
        main = torch.where(bx.abs() > by.abs(), bx, by)
        code = torch.where(density[mat] > 0.05, 1, 0)
        code = torch.where(main > 0, 2, code)
        code = torch.where(main < 0, 3, code)
        ax.imshow(code.reshape(tt.shape).numpy(), origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=3,
                  extent=(float(z[0]), float(z[-1]), -extent_t, extent_t), interpolation="nearest")
        for p in geometry.planes:
            ax.axvline(p.z, color="k", lw=0.8, ls="--")
            ax.text(p.z, extent_t * 0.9, p.name, rotation=90, ha="right", va="top", fontsize=8)
            if p.has_aperture:
                half = p.aperture_half_x if plane == "xz" else p.aperture_half_y
                ax.plot([p.z, p.z], [-half, half], color="green", lw=3)
        ax.set_ylabel("x [cm] (y = 0)" if plane == "xz" else f"y [cm] (x = {x_probe:g} cm)")
    axes[-1].set_xlabel("z [cm] (FairShip frame)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("#d62728", "#1f77b4", "#bbbbbb")]
    axes[0].legend(handles, ["field > 0 (By core/return, Bx yokes)", "field < 0", "dense, no field"],
                   loc="lower left", fontsize=8)
    axes[0].set_title(f"{geometry.name}: {Path(geometry_path).name}")
    fig.tight_layout()
    output = Path(output)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def show(args: argparse.Namespace) -> int:
    output = args.output or Path(args.config).with_suffix(".png").name
    path = draw_geometry(args.config, output, x_probe=args.x_probe)
    print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """Add the ``geometry`` command with its ``show`` subcommand."""
    parser = subparsers.add_parser("geometry", help="inspect shield geometry files")
    sub = parser.add_subparsers(dest="geometry_command", required=True, metavar="ACTION")
    show_parser = sub.add_parser("show", help="draw the shield in the x-z and y-z planes (PNG)")
    show_parser.add_argument("config", help="geometry YAML file")
    show_parser.add_argument("--output", "-o", help="PNG file to write (default: <config name>.png)")
    show_parser.add_argument("--x-probe", type=float, default=5.0, help="x of the y-z slice [cm]")
    show_parser.set_defaults(func=show)
