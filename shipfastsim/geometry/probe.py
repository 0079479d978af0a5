"""Inspecting a geometry without Python: points probed, and the field of every magnet part.

* `probe_points(geometry, points)`: per point [cm] a dict with ``point_cm``,
  ``material``, ``field_T`` ([Bx, By, Bz]) and ``region`` (``"Magn3/return"``, a block,
  the target, a cavern section, ``"rock"`` or ``"world"``), as ``shipfastsim geometry
  probe`` prints it;
* `part_field_rows` / `field_table`: the field of the core, return yokes and top/bottom
  yokes of each magnet under the geometry's field model (text for the run report and
  ``geometry probe --fields``).
"""

from __future__ import annotations

from collections.abc import Sequence

from shipfastsim.geometry.magnet import part_fields
from shipfastsim.geometry.model import ShieldGeometry

__all__ = ["probe_points", "part_field_rows", "field_table"]


def probe_points(geometry: ShieldGeometry, points: Sequence[Sequence[float]]) -> list[dict]:
    """Material, field [T] and region at each (x, y, z) [cm]."""
    import torch

    from shipfastsim.geometry.lookup import GeometryLookup

    lookup = GeometryLookup(geometry)
    xyz = torch.tensor([list(map(float, p)) for p in points], dtype=torch.float64).reshape(-1, 3)
    material, bx, by, bz = lookup.query(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    regions = lookup.region_names(xyz[:, 0], xyz[:, 1], xyz[:, 2])
    return [{"point_cm": xyz[i].tolist(), "material": lookup.materials[int(material[i])][0],
             "field_T": [float(bx[i]), float(by[i]), float(bz[i])], "region": regions[i]}
            for i in range(len(regions))]


def part_field_rows(geometry: ShieldGeometry) -> list[dict]:
    """Per magnet: name, core By, return-yoke By and top/bottom-yoke |Bx| [T] (the
    latter's sign is that of sign(x) sign(y) times the value)."""
    rows = []
    for m in geometry.magnets:
        core, ret, yoke = part_fields(m, geometry.field_model)
        rows.append({"magnet": m.name, "core_By": core, "return_By": ret, "yoke_Bx": yoke})
    return rows


def field_table(geometry: ShieldGeometry) -> str:
    """Plain-text table of `part_field_rows` with the field model in its title."""
    fm = geometry.field_model
    if fm.model == "map":
        return f"{geometry.name}: field from the map {fm.map_file} (per-part uniform fields not used)"
    lines = [f"{geometry.name}: field model {fm.model}, polarity {fm.polarity} [T]",
             f"{'magnet':12} {'core By':>9} {'return By':>10} {'yoke Bx*':>9}"]
    for row in part_field_rows(geometry):
        lines.append(f"{row['magnet']:12} {row['core_By']:9.4f} {row['return_By']:10.4f} {row['yoke_Bx']:9.4f}")
    lines.append("* top/bottom yokes: Bx = value x sign(x) sign(y)")
    return "\n".join(lines)
