"""Field maps in FairShip's own format, interpolated as FairShip does for every transport.

The interpolation itself is `shipfastsim.geometry.kernel.field_map_value`, the
scalar code that the transport kernel also runs.

Format (ShipSoft/FairShip ``field/ShipBFieldMap.cxx``, ``readRootFile``): a ROOT file
with a tree ``Range`` of one entry (``xMin, xMax, dx, yMin, yMax, dy, zMin, zMax,
dz``, cm) and a tree ``Data`` with ``Bx, By, Bz`` [T], one entry per grid node in
ascending z, then y, then x (node (i, j, k) is entry (i Ny + j) Nz + k), with
N_u = int((uMax - uMin)/du + 1.5) nodes per axis.  ``Field`` evaluates it as here:
the local point is the global one minus the map's offset; with quadrant symmetry the
map holds x, y >= 0 only and Bx(-x) = -Bx, Bx(-y) = -Bx, Bz(-y) = -Bz, By even;
outside the range the field is 0; inside, trilinear interpolation between the eight
neighbouring nodes (a point in the last cell of an axis takes its upper node).

FairShip places the shield map ``files/<shieldName>.root`` as a global field with z
offset ``muShield.Entrance[0]`` (the first magnet's entrance) and quadrant symmetry
(``defineFieldMap("muonShieldField", ..., TVector3(0, 0, Entrance[0]), TVector3(), True)``,
python/geomGeant4.py as read through its users in FairShip); those are the defaults
of the geometry YAML's ``shield.field`` (``map``, ``map_z_offset``, ``map_symmetric``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from shipfastsim.geometry.model import GeometryError

__all__ = ["RANGE_BRANCHES", "FieldMapError", "FieldMap", "read_field_map", "write_field_map", "load_field_map"]

RANGE_BRANCHES = ("xMin", "xMax", "dx", "yMin", "yMax", "dy", "zMin", "zMax", "dz")


class FieldMapError(GeometryError):
    """A field-map file that is missing or not in FairShip's format (names the file)."""


def _nodes(lo: float, hi: float, step: float) -> int:
    return int((hi - lo) / step + 1.5) if step > 0 else 0  # ShipBFieldMap::setLimits


@dataclass
class FieldMap:
    """A grid of (Bx, By, Bz) [T], shape (Nx, Ny, Nz, 3), from ``lower`` [cm] in steps
    ``step`` [cm], placed at ``offset`` (x, y, z) [cm]; see the module docstring."""

    grid: torch.Tensor
    lower: tuple[float, float, float]
    step: tuple[float, float, float]
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    symmetric: bool = True
    source: str | None = None
    _kernel_grid: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def to(self, device, dtype) -> FieldMap:
        """The same map with its grid on ``device`` in ``dtype``."""
        return FieldMap(self.grid.to(device, dtype), self.lower, self.step, self.offset, self.symmetric, self.source)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor):
        """(Bx, By, Bz) [T] at global positions [cm], as ``ShipBFieldMap::Field``."""
        from shipfastsim.geometry.kernel import field_map_points

        if self._kernel_grid is None:  # converted once: Geant4 calls this for every point it steps through
            self._kernel_grid = (np.ascontiguousarray(self.grid.detach().to("cpu", torch.float64).numpy()),
                                 np.array([*self.lower, *self.step, *self.offset], dtype=np.float64))
        grid, frame = self._kernel_grid
        x = torch.as_tensor(x)
        out = field_map_points(grid, frame, self.symmetric,
                               *(torch.as_tensor(v).detach().to("cpu", torch.float64).reshape(-1).numpy()
                                 for v in (x, y, z)))
        b = torch.from_numpy(out).to(x.device, x.dtype if x.is_floating_point() else torch.float64)
        return b[:, 0].reshape(x.shape), b[:, 1].reshape(x.shape), b[:, 2].reshape(x.shape)


def read_field_map(path: str | Path, offset=(0.0, 0.0, 0.0), symmetric: bool = True) -> FieldMap:
    """Read a FairShip field-map ROOT file (uproot); `FieldMapError` naming the file
    when it is missing, unreadable or not in that format."""
    path = Path(path)
    if not path.is_file():
        raise FieldMapError(f"field map {path}: file not found")
    try:
        import uproot
    except ImportError:  # pragma: no cover - uproot is a dependency of the ROOT extra
        raise FieldMapError(f"field map {path}: reading it needs uproot (pip install 'shipfastsim[root]')") from None
    try:
        with uproot.open(path) as f:
            for tree, branches in (("Range", RANGE_BRANCHES), ("Data", ("Bx", "By", "Bz"))):
                if tree not in f or not isinstance(f[tree], uproot.TTree):
                    raise FieldMapError(f"field map {path}: no {tree!r} TTree (FairShip's format has Range and Data)")
                missing = [b for b in branches if b not in f[tree].keys()]
                if missing:
                    raise FieldMapError(f"field map {path}: tree {tree!r} lacks branches {missing}")
            r = {k: float(v[0]) for k, v in f["Range"].arrays(list(RANGE_BRANCHES), library="np").items()}
            data = f["Data"].arrays(["Bx", "By", "Bz"], library="np")
    except FieldMapError:
        raise
    except Exception as error:  # uproot raises many kinds for a corrupt or foreign file
        raise FieldMapError(f"field map {path}: not a readable ROOT file ({type(error).__name__}: {error})") from None
    shape = tuple(_nodes(r[f"{a}Min"], r[f"{a}Max"], r[f"d{a}"]) for a in "xyz")
    n = int(np.prod(shape))
    if min(shape) < 2 or len(data["Bx"]) != n:
        raise FieldMapError(f"field map {path}: Range gives {shape} nodes ({n}), Data has {len(data['Bx'])} entries")
    grid = np.stack([data["Bx"], data["By"], data["Bz"]], 1).astype(np.float64).reshape(*shape, 3)
    return FieldMap(torch.from_numpy(grid), (r["xMin"], r["yMin"], r["zMin"]), (r["dx"], r["dy"], r["dz"]),
                    tuple(float(v) for v in offset), symmetric, str(path))


def write_field_map(path: str | Path, grid: np.ndarray, lower, step) -> Path:
    """Write a (Nx, Ny, Nz, 3) grid [T] from ``lower`` in steps ``step`` [cm] as a
    FairShip field-map file (float32 branches, the types ShipBFieldMap reads)."""
    import uproot

    grid = np.asarray(grid, dtype=np.float32)
    upper = [lo + (n - 1) * d for lo, n, d in zip(lower, grid.shape[:3], step, strict=True)]
    values = dict(zip(RANGE_BRANCHES, [v for a in range(3) for v in (lower[a], upper[a], step[a])], strict=True))
    flat = grid.reshape(-1, 3)
    with uproot.recreate(path) as f:  # TTrees (mktree): what TFile::Get("Range") of ShipBFieldMap expects
        f.mktree("Range", dict.fromkeys(RANGE_BRANCHES, np.float32)).extend(
            {k: np.array([v], dtype=np.float32) for k, v in values.items()})
        f.mktree("Data", dict.fromkeys(("Bx", "By", "Bz"), np.float32)).extend(
            {"Bx": flat[:, 0], "By": flat[:, 1], "Bz": flat[:, 2]})
    return Path(path)


def load_field_map(field_model, geometry) -> FieldMap:
    """The map of a geometry's ``map`` field model, placed as FairShip places it."""
    z = field_model.map_z_offset if field_model.map_z_offset is not None else geometry.magnets[0].z_start
    return read_field_map(field_model.map_file, (0.0, 0.0, z), field_model.map_symmetric)
