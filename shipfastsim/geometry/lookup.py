"""Material, field and region of a `ShieldGeometry` at tensors of positions (torch, float64).

``GeometryLookup(geometry)`` answers, for tensors of positions [cm]:

* ``material_at(x, y, z) -> int64`` index into ``lookup.materials`` (a list of
  ``(material_name, density_scale)``; index 1 is always the target, whose density is
  scaled by its fill fraction);
* ``field_at(x, y, z) -> (Bx, By, Bz)`` in tesla, under the geometry's field model
  (`shipfastsim.geometry.magnet`);
* ``region_at(x, y, z) -> int64`` 0 (no magnet iron), 1 core, 2 return yoke,
  3 top/bottom yoke; ``region_names`` gives ``"Magn3/return"`` or the block name.

The magnet cross-section and the part fields are those of
`shipfastsim.geometry.magnet` (FairShip's Arb8 corners, interpolated per corner);
the lookup itself is `SegmentGeometry` in float64, the same table the transports use.
"""

from __future__ import annotations

import torch

from shipfastsim.geometry.magnet import PART_NAMES
from shipfastsim.geometry.model import ShieldGeometry
from shipfastsim.geometry.segments import TARGET_INDEX, SegmentGeometry

__all__ = ["GeometryLookup", "REGION_NONE", "REGION_CORE", "REGION_RETURN", "REGION_YOKE", "TARGET_INDEX"]

REGION_NONE, REGION_CORE, REGION_RETURN, REGION_YOKE = 0, 1, 2, 3


def _t(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64).reshape(-1)


class GeometryLookup:
    """Material, field and region lookup for one geometry (see module docstring)."""

    def __init__(self, geometry: ShieldGeometry):
        self.geometry = geometry
        g = geometry
        self.field_model = g.field_model
        self.materials: list[tuple[str, float]] = [(g.world.default_material, 1.0),
                                                   (g.target.material, g.target.fill_fraction)]
        for name in [g.shield_material, *(b.material for b in g.blocks), g.cavern_material]:
            if name is not None and (name, 1.0) not in self.materials:
                self.materials.append((name, 1.0))
        self._index = {m: i for i, m in enumerate(self.materials)}
        self.field_map = None
        if g.field_model.model == "map":
            from shipfastsim.geometry.fieldmap import load_field_map

            self.field_map = load_field_map(g.field_model, g)
        self.table = SegmentGeometry(self, dtype=torch.float64)

    def material_index(self, name: str) -> int:
        """Index of an unscaled material of this geometry."""
        return self._index[(name, 1.0)]

    def query(self, x, y, z) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Material index and field (Bx, By, Bz) [T] at positions [cm]."""
        return self.table.query(_t(x), _t(y), _t(z))

    def field_at(self, x, y, z) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Magnetic field (Bx, By, Bz) [T] at positions [cm]."""
        return self.query(x, y, z)[1:]

    def material_at(self, x, y, z) -> torch.Tensor:
        """Index into `materials` of the material at positions [cm]."""
        return self.query(x, y, z)[0]

    def region_at(self, x, y, z) -> torch.Tensor:
        """Magnet part code (0 none, 1 core, 2 return yoke, 3 top/bottom yoke)."""
        return self.table.query(_t(x), _t(y), _t(z), with_region=True)[5]

    def region_names(self, x, y, z) -> list[str]:
        """Per point: ``"<magnet>/<part>"`` in magnet iron, else the innermost block,
        target or cavern section containing it, else ``"rock"`` (inside the cavern's
        material) or ``"world"``."""
        x, y, z = _t(x), _t(y), _t(z)
        g = self.geometry
        _, _, _, _, index, part = self.table.query(x, y, z, with_region=True)
        names = []
        for i, (xi, yi, zi) in enumerate(zip(x.tolist(), y.tolist(), z.tolist(), strict=True)):
            if int(part[i]) > 0:
                names.append(f"{g.magnets[int(index[i])].name}/{PART_NAMES[int(part[i]) - 1]}")
                continue
            t = g.target
            if t.z0 <= zi < t.z_end and abs(xi) <= t.half_x and abs(yi) <= t.half_y:
                names.append("target")
                continue
            inside = [b.name for b in (*g.blocks, *g.cavern_sections) if self._in_box(b, xi, yi, zi)]
            names.append(inside[0] if inside else ("rock" if g.cavern_sections else "world"))
        return names

    @staticmethod
    def _in_box(b, x, y, z):
        return (z >= b.z_start) & (z < b.z_end) & (x >= b.x_min) & (x <= b.x_max) & (y >= b.y_min) & (y <= b.y_max)

    def z_boundaries(self) -> torch.Tensor:
        """Sorted z [cm] where material or field can change along z (for step control)."""
        g = self.geometry
        zs = {g.target.z0, g.target.z_end, g.world.z_min, g.world.z_max}
        for m in g.magnets:
            zs |= {m.z_start, m.z_end}
        for b in (*g.blocks, *g.cavern_sections):
            zs |= {b.z_start, b.z_end}
        zs |= {p.z for p in g.planes}
        return torch.tensor(sorted(zs), dtype=torch.float64)
