"""Field maps in FairShip's own format, interpolated in torch for both transports.

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

from dataclasses import dataclass
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

    def to(self, device, dtype) -> FieldMap:
        """The same map with its grid on ``device`` in ``dtype``."""
        return FieldMap(self.grid.to(device, dtype), self.lower, self.step, self.offset, self.symmetric, self.source)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor):
        """(Bx, By, Bz) [T] at global positions [cm], as ``ShipBFieldMap::Field``."""
        local = [x - self.offset[0], y - self.offset[1], z - self.offset[2]]
        one = torch.ones_like(x)
        sign_x = sign_z = one
        if self.symmetric:
            sign_z = torch.where(local[1] < 0, -one, one)
            sign_x = torch.where(local[0] < 0, -one, one) * sign_z
            local[0], local[1] = local[0].abs(), local[1].abs()
        inside = torch.ones_like(x, dtype=torch.bool)
        index, frac = [], []
        for axis, u in enumerate(local):
            n = self.grid.shape[axis]
            dist = (u - self.lower[axis]) / self.step[axis]
            inside &= (dist >= 0) & (dist <= n - 1 + 1e-6)
            i = dist.floor().clamp(0, n - 2)
            index.append(i.long())
            frac.append((dist - i).clamp(0.0, 1.0))  # the last cell takes its upper node (weight 1)
        ny, nz = self.grid.shape[1], self.grid.shape[2]
        flat = self.grid.reshape(-1, 3)
        base = (index[0] * ny + index[1]) * nz + index[2]
        out = torch.zeros(x.shape + (3,), dtype=self.grid.dtype, device=x.device)
        for di in (0, 1):
            wx = frac[0] if di else 1.0 - frac[0]
            for dj in (0, 1):
                wy = frac[1] if dj else 1.0 - frac[1]
                for dk in (0, 1):
                    wz = frac[2] if dk else 1.0 - frac[2]
                    out += (wx * wy * wz)[:, None] * flat[base + (di * ny + dj) * nz + dk]
        out = torch.where(inside[:, None], out, torch.zeros_like(out))
        return out[:, 0] * sign_x, out[:, 1], out[:, 2] * sign_z


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
