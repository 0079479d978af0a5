"""The Geant4 geometry checked against the project's lookup: overlaps, then material and part per point.

`check_geometry` builds a geometry in Geant4 with the overlap check on every
placement (``G4VPhysicalVolume::CheckOverlaps`` on points of each volume's surface),
then asks Geant4's navigator, for random points, which volume holds each one and
compares its material and magnet part (``Magn3/core``) with what
`GeometryLookup` (``shipfastsim geometry probe``) reports for the same point
(`random_points`: most of them where the boundaries are).  Lengths in cm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from shipfastsim.geometry import GeometryLookup, ShieldGeometry
from shipfastsim.geometry.magnet import PART_NAMES
from shipfastsim.plugins.geant4_shield.detector import MM_PER_CM, material_label

__all__ = ["GeometryCheck", "check_geometry", "random_points"]


@dataclass
class GeometryCheck:
    """What `check_geometry` found: placements that overlap, and the points [cm] where
    Geant4's material or magnet part differs from the lookup's (with both answers)."""

    points: int
    overlaps: list[str] = field(default_factory=list)
    mismatches: list[tuple[tuple[float, float, float], str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.overlaps and not self.mismatches

    def summary(self) -> str:
        lines = [f"{self.points} points, {len(self.overlaps)} overlapping placements, "
                 f"{len(self.mismatches)} points where Geant4 and the lookup differ"]
        lines += [f"  overlap: {name}" for name in self.overlaps]
        lines += [f"  ({x:.2f}, {y:.2f}, {z:.2f}) cm: Geant4 {g4}, lookup {ours}"
                  for (x, y, z), g4, ours in self.mismatches[:20]]
        return "\n".join(lines)


def random_points(geometry: ShieldGeometry, n: int, seed: int = 0) -> torch.Tensor:
    """(n, 3) points [cm]: a third uniform in the world, a third in the box holding the
    target, blocks and magnets, a third shared equally among the magnets, each uniform
    in the magnet's outer envelope (where the corners are)."""
    g, w = geometry, geometry.world
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand((n, 3), generator=gen, dtype=torch.float64)

    def envelope(m) -> tuple[float, float]:
        return (max(m.midGapIn + m.dXIn * (1 + m.ratio_yokesIn) + m.gap_in_eff,
                    m.midGapOut + m.dXOut * (1 + m.ratio_yokesOut) + m.gap_out_eff) + 5.0,
                max(m.dYIn + m.dY_yokeIn, m.dYOut + m.dY_yokeOut) + 5.0)

    def box(x: float, y: float, z0: float, z1: float) -> tuple[list[float], list[float]]:
        return [max(-w.half_x, -x), max(-w.half_y, -y), max(w.z_min, z0)], [min(w.half_x, x), min(w.half_y, y),
                                                                             min(w.z_max, z1)]

    reach_x = max(envelope(m)[0] for m in g.magnets) + 20.0
    reach_y = max(envelope(m)[1] for m in g.magnets) + 20.0
    z0 = min([g.target.z0, g.shield_z_start] + [b.z_start for b in g.blocks]) - 20.0
    boxes = [box(w.half_x, w.half_y, w.z_min, w.z_max), box(reach_x, reach_y, z0, g.shield_z_end + 20.0)]
    boxes += [box(*envelope(m), m.z_start, m.z_end) for m in g.magnets]
    # Points 0 .. n/3: world; n/3 .. 2n/3: shield box; the rest: magnet by magnet.
    owner = torch.cat([torch.zeros(n // 3), torch.ones(n // 3),
                       2 + torch.arange(n - 2 * (n // 3)) % len(g.magnets)]).long()
    lo = torch.tensor([b[0] for b in boxes], dtype=torch.float64)[owner]
    hi = torch.tensor([b[1] for b in boxes], dtype=torch.float64)[owner]
    return lo + u * (hi - lo)


def _lookup_answers(lookup: GeometryLookup, points: torch.Tensor) -> list[tuple[str, str]]:
    """(material label, part) per point from the lookup."""
    x, y, z = points.unbind(1)
    material, _, _, _, magnet, part = lookup.table.query(x, y, z, with_region=True)
    answers = []
    for m, k, c in zip(material.tolist(), magnet.tolist(), part.tolist(), strict=True):
        name, scale = lookup.materials[m]
        where = f"{lookup.geometry.magnets[k].name}/{PART_NAMES[c - 1]}" if c > 0 else "-"
        answers.append((material_label(name, scale), where))
    return answers


def check_geometry(geometry: ShieldGeometry, n_points: int = 20000, seed: int = 0, parts_of=None) -> GeometryCheck:
    """Build ``geometry`` in Geant4 with the overlap check, then compare Geant4's navigator
    with the lookup at ``n_points`` random points (`random_points`).  ``parts_of``
    replaces `detector.magnet_parts` in the Geant4 build (tests plant errors with it)."""
    from shipfastsim.plugins.geant4_shield.detector import build_detector
    from shipfastsim.plugins.geant4_shield.runtime import Geant4Session

    session = Geant4Session.get()
    g4 = session.g4
    session.use(("navigator-check", repr(geometry), parts_of),
                lambda: build_detector(geometry, check_overlaps=True, parts_of=parts_of))
    session.initialise()
    detector = session.detector
    world = detector.world_physical
    navigator = g4.G4Navigator()
    navigator.SetWorldVolume(world)
    points = random_points(geometry, n_points, seed)
    expected = _lookup_answers(GeometryLookup(geometry), points)
    report = GeometryCheck(points=n_points, overlaps=list(detector.overlaps))
    for (x, y, z), (material, part) in zip(points.tolist(), expected, strict=True):
        position = g4.G4ThreeVector(x * MM_PER_CM, y * MM_PER_CM, z * MM_PER_CM - detector.z_centre_mm)
        volume = navigator.LocateGlobalPointAndSetup(position, None, False, True)
        name = volume.GetName()
        found_part = "/".join(name.split("/")[:2]) if name.count("/") == 2 else "-"
        found = (volume.GetLogicalVolume().GetMaterial().GetName(), found_part)
        if found != (material, part):
            report.mismatches.append(((x, y, z), f"{found[0]} {found[1]} ({name})", f"{material} {part}"))
    return report
