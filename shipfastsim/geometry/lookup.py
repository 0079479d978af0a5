"""Vectorised material and field lookup for a `ShieldGeometry` (torch, float64).

``GeometryLookup(geometry)`` answers, for tensors of positions [cm]:

* ``material_at(x, y, z) -> int64`` index into ``lookup.materials`` (a list of
  ``(material_name, density_scale)``; index 1 is always the target, whose density is
  scaled by its fill fraction);
* ``field_at(x, y, z) -> (Bx, By, Bz)`` in tesla;
* ``region_at(x, y, z) -> int64`` 0 (no magnet iron), 1 core, 2 return yoke,
  3 top/bottom yoke (for pictures and debugging).

The magnet cross-section follows ShipMuonShield::CreateMagnet: per quadrant, with
ax = |x|, ay = |y| and the parameters interpolated linearly in z from In to Out,

* core: midGap <= ax <= midGap + dX, ay <= dY + dY_yoke (1 - (ax - midGap)/dX);
* return yoke: x_r <= ax <= x_r + ratio dX with x_r = midGap + dX + gap,
  ay <= dY + dY_yoke (ax - x_r)/(ratio dX);
* top/bottom yoke: dY <= ay <= dY + dY_yoke between the core's and the return
  yoke's slanted edges.

Fields: core By = s B, return yoke By = -s B, yokes Bx = s B sign(x) sign(y),
s = +1 (up) / -1 (down).  The loop below runs over magnets (a handful), never over
muons.
"""

from __future__ import annotations

import torch

from shipfastsim.geometry.model import ShieldGeometry

__all__ = ["GeometryLookup", "REGION_NONE", "REGION_CORE", "REGION_RETURN", "REGION_YOKE", "TARGET_INDEX"]

REGION_NONE, REGION_CORE, REGION_RETURN, REGION_YOKE = 0, 1, 2, 3
#: Index of the target in `GeometryLookup.materials`.
TARGET_INDEX = 1


def _t(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


class GeometryLookup:
    """Material, field and region lookup for one geometry (see module docstring)."""

    def __init__(self, geometry: ShieldGeometry):
        self.geometry = geometry
        g = geometry
        self.materials: list[tuple[str, float]] = [(g.world.default_material, 1.0),
                                                   (g.target.material, g.target.fill_fraction)]
        for name in [g.shield_material, *(b.material for b in g.blocks), g.cavern_material]:
            if name is not None and (name, 1.0) not in self.materials:
                self.materials.append((name, 1.0))
        self._index = {m: i for i, m in enumerate(self.materials)}

    def material_index(self, name: str) -> int:
        """Index of an unscaled material of this geometry."""
        return self._index[(name, 1.0)]

    # ---- magnets -------------------------------------------------------------------
    def _magnet_regions(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor):
        """Yield (magnet, in_z mask, region code tensor) per magnet."""
        ax, ay = x.abs(), y.abs()
        for m in self.geometry.magnets:
            in_z = (z >= m.z_start) & (z < m.z_end)
            if not bool(in_z.any()):
                yield m, in_z, None
                continue
            f = ((z - m.z_start) / (2.0 * m.dZ)).clamp(0.0, 1.0)

            def lerp(a: float, b: float, f=f) -> torch.Tensor:
                return a + (b - a) * f

            dx, dy = lerp(m.dXIn, m.dXOut), lerp(m.dYIn, m.dYOut)
            gap, ratio = lerp(m.gap_in_eff, m.gap_out_eff), lerp(m.ratio_yokesIn, m.ratio_yokesOut)
            dyy, mid = lerp(m.dY_yokeIn, m.dY_yokeOut), lerp(m.midGapIn, m.midGapOut)
            x_core_out = mid + dx
            x_ret_in = x_core_out + gap
            ret_w = ratio * dx
            x_ret_out = x_ret_in + ret_w
            core = (ax >= mid) & (ax <= x_core_out) & (ay <= dy + dyy * (1.0 - (ax - mid) / dx))
            ret = (ax >= x_ret_in) & (ax <= x_ret_out) & (ay <= dy + dyy * (ax - x_ret_in) / ret_w)
            # Yokes: above y = dY, right of the core's slanted edge, left of the return yoke's.
            t = (ay - dy) / dyy.clamp_min(1e-9)
            yoke = (ay >= dy) & (ay <= dy + dyy) & (ax >= mid + dx * (1.0 - t)) & (ax <= x_ret_in + ret_w * t)
            region = torch.zeros_like(x, dtype=torch.int64)
            region = torch.where(yoke, REGION_YOKE, region)
            region = torch.where(ret, REGION_RETURN, region)
            region = torch.where(core, REGION_CORE, region)
            region = torch.where(in_z, region, REGION_NONE)
            yield m, in_z, region

    def region_at(self, x, y, z) -> torch.Tensor:
        """Magnet region code (0 none, 1 core, 2 return yoke, 3 top/bottom yoke)."""
        x, y, z = _t(x), _t(y), _t(z)
        out = torch.zeros_like(x, dtype=torch.int64)
        for _, in_z, region in self._magnet_regions(x, y, z):
            if region is not None:
                out = torch.where(in_z, region, out)
        return out

    def field_at(self, x, y, z) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Magnetic field (Bx, By, Bz) [T] at positions [cm]."""
        _, bx, by, bz = self.query(x, y, z)
        return bx, by, bz

    def material_at(self, x, y, z) -> torch.Tensor:
        """Index into `materials` of the material at positions [cm]."""
        return self.query(x, y, z)[0]

    def query(self, x, y, z) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Material index and field (Bx, By, Bz) [T] in one pass over the magnets."""
        x, y, z = _t(x), _t(y), _t(z)
        g = self.geometry
        material = torch.zeros_like(x, dtype=torch.int64)
        if g.cavern_sections:
            material = torch.full_like(material, self.material_index(g.cavern_material))
            for s in g.cavern_sections:
                material = torch.where(self._in_box(s, x, y, z), 0, material)
        for b in g.blocks:
            material = torch.where(self._in_box(b, x, y, z), self.material_index(b.material), material)
        t = g.target
        in_target = (z >= t.z0) & (z < t.z_end) & (x.abs() <= t.half_x) & (y.abs() <= t.half_y)
        material = torch.where(in_target, TARGET_INDEX, material)
        iron = self.material_index(g.shield_material)
        bx, by = torch.zeros_like(x), torch.zeros_like(x)
        for m, _, region in self._magnet_regions(x, y, z):
            if region is None:
                continue
            material = torch.where(region != REGION_NONE, iron, material)
            s_b = m.polarity
            by = torch.where(region == REGION_CORE, s_b, by)
            by = torch.where(region == REGION_RETURN, -s_b, by)
            bx = torch.where(region == REGION_YOKE, s_b * torch.sign(x) * torch.sign(y), bx)
        return material, bx, by, torch.zeros_like(x)

    @staticmethod
    def _in_box(b, x, y, z) -> torch.Tensor:
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
