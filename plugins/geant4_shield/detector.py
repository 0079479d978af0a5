"""The shield geometry as Geant4 volumes: one `ShieldGeometry`, built the way the lookup reads it.

`GeometryLookup` (the transports' geometry) decides the material at a point by
precedence: magnet iron, then the target, then the blocks (later ones first), then
the cavern sections (air), then the cavern's material (rock) or the world's.  Geant4
needs volumes that do not overlap, so `build_volumes` gives the same answer with a
hierarchy and Boolean solids:

* the world box, of the cavern material (or the world's default without a cavern);
* the cavern: the union of its sections clipped to the world, air;
* inside it (or the world): every magnet part as a ``G4GenericTrap`` with the eight
  corners of `shipfastsim.geometry.magnet` (the one implementation of the shape:
  `magnet_part_corners`), the target, and each block minus whatever takes
  precedence over it where they meet (the target, later blocks, magnet parts).

Materials are NIST's (``G4_Fe``, ``G4_W``, ...) at the project's densities (scaled
for the target's fill fraction), named as the geometry names them.  Fields, per
``shield.field.model``: one ``G4UniformMagField`` per magnet part for ``constant``
and ``flux-conserving`` (`magnet.part_fields`), the field map everywhere for
``map`` (a Python ``G4MagneticField``: correct but slow).  Lengths in the geometry
are cm; Geant4's unit is mm.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass

from shipfastsim.geometry import GeometryLookup, ShieldGeometry, get_material
from shipfastsim.geometry.magnet import PART_NAMES, face_values, part_fields

__all__ = ["NIST_NAMES", "MagnetPart", "magnet_parts", "plane_problems", "build_detector", "material_label",
           "plane_detector"]

#: NIST material behind each project material name.
NIST_NAMES = {"iron": "G4_Fe", "tungsten": "G4_W", "copper": "G4_Cu", "air": "G4_AIR", "concrete": "G4_CONCRETE"}
MM_PER_CM = 10.0


@dataclass(frozen=True)
class MagnetPart:
    """One of a magnet's eight iron parts: name (``Magn3/core/+x``), the part code of
    `GeometryLookup.region_at` (1 core, 2 return, 3 yoke), the four (x, y) corners [cm]
    at the In face and at the Out face (clockwise), and its uniform field (Bx, By) [T]."""

    name: str
    part: int
    corners_in: tuple[tuple[float, float], ...]
    corners_out: tuple[tuple[float, float], ...]
    field: tuple[float, float]


def _quadrant_corners(mid, dx, gap, ret_w, dy, dyy) -> dict[str, list[tuple[float, float]]]:
    """Corners [cm] of the core, return yoke and top yoke for x > 0 (and y > 0 for the
    yoke), from `SECTION_COLUMNS` (see `shipfastsim.geometry.magnet`)."""
    x_ret = mid + dx + gap
    return {
        "core": [(mid, -(dy + dyy)), (mid, dy + dyy), (mid + dx, dy), (mid + dx, -dy)],
        "return": [(x_ret, -dy), (x_ret, dy), (x_ret + ret_w, dy + dyy), (x_ret + ret_w, -(dy + dyy))],
        "yoke": [(mid + dx, dy), (mid, dy + dyy), (x_ret + ret_w, dy + dyy), (x_ret, dy)],
    }


def _clockwise(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True))
    return points if area <= 0 else points[::-1]


def magnet_parts(magnet, field_model) -> list[MagnetPart]:
    """The eight parts of a `Magnet` (two cores, two return yokes, four top/bottom
    yokes) with their corners and fields under ``field_model``."""
    inn, out = face_values(magnet)
    by_core, by_return, bx_yoke = part_fields(magnet, field_model)
    q_in, q_out = _quadrant_corners(*inn), _quadrant_corners(*out)
    parts = []
    for kind, code in zip(("core", "return", "yoke"), (1, 2, 3), strict=True):
        for sx in (1.0, -1.0):
            for sy in ((1.0, -1.0) if kind == "yoke" else (1.0,)):
                def mirror(points, sx=sx, sy=sy):
                    return tuple(_clockwise([(sx * x, sy * y) for x, y in points]))
                field = (bx_yoke * sx * sy, 0.0) if kind == "yoke" else (0.0, by_core if kind == "core" else by_return)
                side = ("+x" if sx > 0 else "-x") + (("+y" if sy > 0 else "-y") if kind == "yoke" else "")
                parts.append(MagnetPart(f"{magnet.name}/{PART_NAMES[code - 1]}/{side}", code, mirror(q_in[kind]),
                                        mirror(q_out[kind]), field))
    return parts


def material_label(name: str, scale: float = 1.0) -> str:
    """The Geant4 material name of a project material (with a density scale)."""
    return name if scale == 1.0 else f"{name}*{scale:g}"


def _clip(box, world):
    """A box's (x_min, x_max, y_min, y_max, z_start, z_end) [cm] clipped to the world."""
    return (max(box.x_min, -world.half_x), min(box.x_max, world.half_x), max(box.y_min, -world.half_y),
            min(box.y_max, world.half_y), max(box.z_start, world.z_min), min(box.z_end, world.z_max))


def _overlap(a, b) -> bool:
    return all(max(a[2 * k], b[2 * k]) < min(a[2 * k + 1], b[2 * k + 1]) for k in range(3))


#: Thickness [cm] of the recording slabs that start at each recording plane.
PLANE_SLAB_CM = 1e-3


def plane_problems(geometry: ShieldGeometry) -> list[str]:
    """Why Geant4 cannot record on the geometry's planes: each plane starts a thin slab
    (`PLANE_SLAB_CM`) that must not cut a magnet, a block or the target."""
    problems = []
    t = geometry.target
    for plane in geometry.planes:
        z0, z1 = plane.z, plane.z + PLANE_SLAB_CM
        clash = [m.name for m in geometry.magnets if m.z_start < z1 and z0 < m.z_end]
        clash += [b.name for b in geometry.blocks if b.z_start < z1 and z0 < b.z_end]
        clash += ["target"] if t.z0 < z1 and z0 < t.z_end else []
        if clash:
            problems.append(f"geant4-shield: recording plane {plane.name!r} at z = {plane.z} cm lies inside "
                            f"{', '.join(clash)}; Geant4 records on planes in the open (air or rock)")
    return problems


def build_detector(geometry: ShieldGeometry, check_overlaps: bool = False, plane_hit=None, parts_of=None):
    """A ``G4VUserDetectorConstruction`` building ``geometry`` (see module docstring);
    with ``check_overlaps`` every placement runs Geant4's overlap check.

    Each recording plane starts a slab `PLANE_SLAB_CM` thick of the material around it
    (a piece inside the cavern, a piece in the rock), whose sensitive detector calls
    ``plane_hit(plane_index, step)`` for every step in it: a muon's first step there
    starts exactly on the plane, so no per-step action is needed anywhere else.
    ``parts_of(magnet, field_model)`` replaces `magnet_parts` (tests plant errors with it).
    After ``Construct``, ``overlaps`` lists the placements that overlap (when checked)."""
    from shipfastsim.plugins.geant4_shield.runtime import import_geant4

    g4 = import_geant4()
    mm, tesla = g4.mm, g4.tesla
    lookup = GeometryLookup(geometry)
    parts_of = parts_of or magnet_parts

    class ShieldDetector(g4.G4VUserDetectorConstruction):
        def __init__(self):
            super().__init__()
            self.keep: list = []  # Python owns these objects: keep them alive
            self.field_managers: list = []
            self.part_volumes: list = []
            self.overlaps: list[str] = []
            self.world_physical = None
            w = geometry.world
            #: Where the project's origin lies in Geant4's frame, whose origin is the world box's centre:
            #: z_geant4 [mm] = 10 z [cm] - z_centre_mm.
            self.z_centre_mm = 0.5 * (w.z_min + w.z_max) * MM_PER_CM

        def material(self, name: str, scale: float = 1.0):
            label = material_label(name, scale)
            existing = g4.G4Material.GetMaterial(label, False)
            if existing is not None:
                return existing
            density = get_material(name).density * scale * g4.g / g4.cm3
            return g4.G4NistManager.Instance().BuildMaterialWithNewDensity(label, NIST_NAMES[name], density)

        def box(self, name, bounds):
            x0, x1, y0, y1, z0, z1 = bounds
            solid = g4.G4Box(name, 0.5 * (x1 - x0) * MM_PER_CM * mm, 0.5 * (y1 - y0) * MM_PER_CM * mm,
                             0.5 * (z1 - z0) * MM_PER_CM * mm)
            self.keep.append(solid)
            return solid, g4.G4ThreeVector(0.5 * (x0 + x1) * MM_PER_CM, 0.5 * (y0 + y1) * MM_PER_CM,
                                           0.5 * (z0 + z1) * MM_PER_CM)

        def place(self, solid, material, name, mother_logical, position):
            logical = g4.G4LogicalVolume(solid, material, name)
            physical = g4.G4PVPlacement(None, position, logical, name, mother_logical, False, 0, False)
            # Geant4's check: points on the new volume's surface must lie inside its mother
            # and outside every sibling placed before it.
            if check_overlaps and physical.CheckOverlaps(2000, 0.0, False, 1):
                self.overlaps.append(name)
            self.keep += [logical, physical]
            return logical

        def Construct(self):
            w = geometry.world
            world_bounds = (-w.half_x, w.half_x, -w.half_y, w.half_y, w.z_min, w.z_max)
            outside = geometry.cavern_material if geometry.cavern_sections else w.default_material
            solid, centre = self.box("world", world_bounds)
            world_logical = g4.G4LogicalVolume(solid, self.material(outside), "world")
            world = g4.G4PVPlacement(None, g4.G4ThreeVector(), world_logical, "world", None, False, 0, False)
            self.keep += [world_logical, world]
            self.world_physical = world
            mother, offset = world_logical, centre
            if geometry.cavern_sections:
                sections = [_clip(s, w) for s in geometry.cavern_sections]
                sections = [s for s in sections if s[0] < s[1] and s[2] < s[3] and s[4] < s[5]]
                cavern, cavern_centre = self.box("cavern", sections[0])
                for k, bounds in enumerate(sections[1:]):
                    piece, piece_centre = self.box(f"cavern_{k}", bounds)
                    cavern = g4.G4UnionSolid("cavern", cavern, piece, None, piece_centre - cavern_centre)
                    self.keep.append(cavern)
                mother = self.place(cavern, self.material("air"), "cavern", world_logical, cavern_centre - centre)
                offset = cavern_centre
            self.build_contents(mother, offset)
            self.build_planes(world_logical, centre, mother if geometry.cavern_sections else None, offset)
            return world

        def build_planes(self, world_logical, world_centre, cavern_logical, cavern_centre):
            """The recording slabs: in the cavern (its part of the slab) and in the world outside it."""
            w = geometry.world
            cavern_solid = cavern_logical.GetSolid() if cavern_logical is not None else None
            self.plane_volumes = []
            problems = plane_problems(geometry)
            if problems:
                raise ValueError("; ".join(problems))
            for k, plane in enumerate(geometry.planes):
                z_range = (plane.z, plane.z + PLANE_SLAB_CM)
                slab, slab_centre = self.box(f"plane:{plane.name}", (-w.half_x, w.half_x, -w.half_y, w.half_y,
                                                                      *z_range))
                if cavern_solid is None:
                    pieces = [(slab, world_logical, slab_centre - world_centre, w.default_material)]
                else:
                    shift = slab_centre - cavern_centre
                    inside = g4.G4IntersectionSolid(f"plane:{plane.name}", cavern_solid, slab, None, shift)
                    back = g4.G4ThreeVector() - shift  # the cavern seen from the slab
                    rock = g4.G4SubtractionSolid(f"plane:{plane.name}", slab, cavern_solid, None, back)
                    self.keep += [inside, rock]
                    pieces = [(inside, cavern_logical, g4.G4ThreeVector(), "air"),
                              (rock, world_logical, slab_centre - world_centre, geometry.cavern_material)]
                for solid, mother, position, material in pieces:
                    logical = self.place(solid, self.material(material), f"plane:{plane.name}", mother, position)
                    self.plane_volumes.append((logical, k))

        def build_contents(self, mother, offset):
            """Magnet parts, target and blocks inside ``mother`` whose centre is at ``offset`` [mm]."""
            parts = []
            for magnet in geometry.magnets:
                half_z = magnet.dZ * MM_PER_CM * mm
                centre = g4.G4ThreeVector(0.0, 0.0, (magnet.z_start + magnet.dZ) * MM_PER_CM)
                for part in parts_of(magnet, geometry.field_model):
                    vertices = g4.G4TwoVectorVector()
                    for x, y in (*part.corners_in, *part.corners_out):
                        vertices.append(g4.G4TwoVector(x * MM_PER_CM * mm, y * MM_PER_CM * mm))
                    solid = g4.G4GenericTrap(part.name, half_z, vertices)
                    self.keep.append(solid)
                    parts.append((solid, centre, magnet))
                    logical = self.place(solid, self.material(geometry.shield_material), part.name, mother,
                                         centre - offset)
                    self.part_volumes.append((logical, part))
            t = geometry.target
            target_bounds = (-t.half_x, t.half_x, -t.half_y, t.half_y, t.z0, t.z_end)
            solid, centre = self.box("target", target_bounds)
            self.place(solid, self.material(t.material, t.fill_fraction), "target", mother, centre - offset)
            blocks = [(b, _clip(b, geometry.world)) for b in geometry.blocks]
            for k, (block, bounds) in enumerate(blocks):
                solid, centre = self.box(block.name, bounds)
                later = [("target", target_bounds)] + [(b.name, bb) for b, bb in blocks[k + 1:]]
                for name, other in later:
                    if _overlap(bounds, other):
                        cut, cut_centre = self.box(f"{block.name}-{name}", other)
                        solid = g4.G4SubtractionSolid(block.name, solid, cut, None, cut_centre - centre)
                        self.keep.append(solid)
                for part_solid, part_centre, magnet in parts:
                    if bounds[4] < magnet.z_end and magnet.z_start < bounds[5]:
                        solid = g4.G4SubtractionSolid(block.name, solid, part_solid, None, part_centre - centre)
                        self.keep.append(solid)
                self.place(solid, self.material(block.material), block.name, mother, centre - offset)

        def ConstructSDandField(self):
            if plane_hit is not None:
                manager = g4.G4SDManager.GetSDMpointer()
                for k, plane in enumerate(geometry.planes):
                    detector = plane_detector(g4, f"plane_{plane.name}", k, plane_hit)
                    manager.AddNewDetector(detector)
                    self.keep.append(detector)
                    for logical, index in self.plane_volumes:
                        if index == k:
                            logical.SetSensitiveDetector(detector)
            if lookup.field_map is not None:
                field = _map_field(g4, lookup)
                manager = g4.G4TransportationManager.GetTransportationManager().GetFieldManager()
                manager.SetDetectorField(field)
                manager.CreateChordFinder(field)
                self.keep.append(field)
                return
            for logical, part in self.part_volumes:
                bx, by = part.field
                if bx == 0.0 and by == 0.0:
                    continue
                field = g4.G4UniformMagField(g4.G4ThreeVector(bx * tesla, by * tesla, 0.0))
                manager = g4.G4FieldManager(field)
                manager.CreateChordFinder(field)
                logical.SetFieldManager(manager, True)
                self.keep.append(field)
                self.field_managers.append(manager)
                _deregister_at_exit(g4, manager)

    return ShieldDetector()


def plane_detector(g4, name: str, index: int, plane_hit):
    """A sensitive detector passing each step in a recording slab to ``plane_hit(index, step)``."""

    class PlaneDetector(g4.G4VSensitiveDetector):
        def ProcessHits(self, step, history):
            plane_hit(index, step)
            return True

    return PlaneDetector(name)


def _map_field(g4, lookup: GeometryLookup):
    """The geometry's field map as a ``G4MagneticField`` (one Python call per evaluation)."""
    import torch

    field_map = lookup.field_map

    class MapField(g4.G4MagneticField):
        def GetFieldValue(self, point, bfield):
            x, y, z = (torch.tensor([point[k] / MM_PER_CM], dtype=torch.float64) for k in range(3))
            bx, by, bz = field_map(x, y, z)
            bfield[0], bfield[1], bfield[2] = (float(b) * g4.tesla for b in (bx, by, bz))

    return MapField()


_to_deregister: list = []


def _deregister_at_exit(g4, manager) -> None:
    # A G4FieldManager created from Python is freed twice at exit (SIGSEGV) unless the
    # store lets go of it first.
    if not _to_deregister:
        atexit.register(lambda: [g4.G4FieldManagerStore.DeRegister(m) for m in _to_deregister])
    _to_deregister.append(manager)
