"""The shield geometry as dataclasses, loaded and validated from YAML.

All lengths are in cm, fields in tesla, in FairShip's frame (see
:mod:`shipfastsim.units`).  Every magnet carries the 15 parameters of FairShip's
``geometry_config.py`` under their FairShip names, so an optimiser can vary them;
`load_geometry` checks the file against `GEOMETRY_SCHEMA` and the physical
consistency (positive sizes, planes ordered, z inside the world) before building.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from shipfastsim.geometry.magnet import FIELD_MODELS, POLARITY_RULES, FieldModel
from shipfastsim.geometry.materials import MATERIALS

__all__ = [
    "MAGNET_PARAMETERS",
    "GEOMETRY_SCHEMA",
    "GeometryError",
    "Box",
    "Target",
    "Magnet",
    "RecordingPlane",
    "DecayVesselSection",
    "World",
    "ShieldGeometry",
    "load_geometry",
    "geometry_from_dict",
]

#: The 15 numbers per magnet, in FairShip's order: lengths [cm], ratios, B [T].
MAGNET_PARAMETERS = (
    "Zgap", "dZ", "dXIn", "dXOut", "dYIn", "dYOut", "gapIn", "gapOut",
    "ratio_yokesIn", "ratio_yokesOut", "dY_yokeIn", "dY_yokeOut", "midGapIn", "midGapOut", "B",
)
_NONNEGATIVE = {"Zgap", "gapIn", "gapOut", "midGapIn", "midGapOut", "dY_yokeIn", "dY_yokeOut"}

_num = {"type": "number"}
_box = {
    "type": "object",
    "required": ["name", "z_start", "z_end", "x_min", "x_max", "y_min", "y_max"],
    "properties": {"name": {"type": "string"}, "material": {"type": "string"},
                   **{k: _num for k in ("z_start", "z_end", "x_min", "x_max", "y_min", "y_max")}},
    "additionalProperties": False,
}
GEOMETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "name", "world", "target", "shield", "planes"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "name": {"type": "string"},
        "frame": {"type": "object", "properties": {"target_z0": _num, "ntuple_z_shift": _num},
                  "additionalProperties": False},
        "world": {"type": "object", "required": ["half_x", "half_y", "z_min", "z_max"],
                  "properties": {"half_x": _num, "half_y": _num, "z_min": _num, "z_max": _num,
                                 "default_material": {"type": "string"}},
                  "additionalProperties": False},
        "target": {"type": "object", "required": ["z0", "length", "half_x", "half_y", "material"],
                   "properties": {"z0": _num, "length": _num, "half_x": _num, "half_y": _num,
                                  "material": {"type": "string"},
                                  "fill_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
                   "additionalProperties": False},
        "blocks": {"type": "array", "items": {**_box, "required": [*_box["required"], "material"]}},
        "cavern": {"type": "object", "required": ["material", "sections"],
                   "properties": {"material": {"type": "string"}, "sections": {"type": "array", "items": _box}},
                   "additionalProperties": False},
        "shield": {
            "type": "object", "required": ["z_start", "material", "magnets"], "additionalProperties": False,
            "properties": {
                "z_start": _num, "material": {"type": "string"},
                "coil_gap_rule": {"enum": ["fairship", "none"]},
                "field": {"type": "object", "required": ["model"], "additionalProperties": False,
                          "properties": {"model": {"enum": list(FIELD_MODELS)},
                                         "polarity": {"enum": list(POLARITY_RULES)},
                                         "map": {"type": "string"}, "map_z_offset": _num,
                                         "map_symmetric": {"type": "boolean"}}},
                "magnets": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["name", "field_direction", *MAGNET_PARAMETERS],
                    "properties": {"name": {"type": "string"}, "field_direction": {"enum": ["up", "down"]},
                                   **{k: _num for k in MAGNET_PARAMETERS}},
                }},
            },
        },
        "decay_vessel": {"type": "object", "required": ["plane", "length", "exit_half_x", "exit_half_y"],
                         "additionalProperties": False,
                         "properties": {"plane": {"type": "string"},
                                        **{k: {"type": "number", "exclusiveMinimum": 0}
                                           for k in ("length", "exit_half_x", "exit_half_y")}}},
        "planes": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "z"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "z": _num,
                           "aperture_half_x": {"type": "number", "exclusiveMinimum": 0},
                           "aperture_half_y": {"type": "number", "exclusiveMinimum": 0}},
        }},
    },
}


class GeometryError(ValueError):
    """A geometry file that does not describe a valid shield."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box [cm] filled with ``material`` (or a cavern section)."""

    name: str
    z_start: float
    z_end: float
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    material: str = "air"


@dataclass(frozen=True)
class Target:
    """The proton target: a box from z0 to z0 + length [cm] of ``material`` whose
    density is scaled by ``fill_fraction`` (the gaps between slices averaged in)."""

    z0: float
    length: float
    half_x: float
    half_y: float
    material: str
    fill_fraction: float = 1.0

    @property
    def z_end(self) -> float:
        return self.z0 + self.length


@dataclass(frozen=True)
class Magnet:
    """One magnet section with FairShip's 15 parameters (lengths in cm, B in T).

    ``z_start``/``z_end`` [cm] are derived from the shield start and the Zgap/dZ of
    the magnets before it.  Cross-section parameters vary linearly from the *In*
    (upstream) to the *Out* (downstream) face.  ``gap_in_eff``/``gap_out_eff`` are
    the coil gaps actually built (FairShip rounds them up, see ``coil_gap_rule``).
    """

    name: str
    field_direction: str
    Zgap: float
    dZ: float
    dXIn: float
    dXOut: float
    dYIn: float
    dYOut: float
    gapIn: float
    gapOut: float
    ratio_yokesIn: float
    ratio_yokesOut: float
    dY_yokeIn: float
    dY_yokeOut: float
    midGapIn: float
    midGapOut: float
    B: float
    z_start: float = 0.0
    gap_in_eff: float = 0.0
    gap_out_eff: float = 0.0

    @property
    def z_end(self) -> float:
        return self.z_start + 2.0 * self.dZ

    @property
    def polarity(self) -> float:
        """Signed core field By [T]: s * B with s = +1 (up) or -1 (down)."""
        return self.B if self.field_direction == "up" else -self.B

    def parameters(self) -> dict[str, float]:
        """The 15 FairShip parameters by name."""
        return {name: getattr(self, name) for name in MAGNET_PARAMETERS}


@dataclass(frozen=True)
class RecordingPlane:
    """A plane z = const [cm] where muon states are recorded; with an aperture
    (half-widths [cm], centred on the beam axis) muons inside it are flagged."""

    name: str
    z: float
    aperture_half_x: float | None = None
    aperture_half_y: float | None = None

    @property
    def has_aperture(self) -> bool:
        return self.aperture_half_x is not None and self.aperture_half_y is not None


@dataclass(frozen=True)
class DecayVesselSection:
    """The decay vessel downstream of its entrance plane ``plane`` (whose z and
    aperture are the entrance): ``length`` [cm] and exit half-widths [cm]; the
    half-widths grow linearly in z between entrance and exit (a pyramidal frustum).
    Used by `shipfastsim.geometry.decay_vessel` for the dangerous-subset labels."""

    plane: str
    length: float
    exit_half_x: float
    exit_half_y: float


@dataclass(frozen=True)
class World:
    """Transport volume [cm]: muons leaving |x| < half_x, |y| < half_y,
    z_min < z < z_max are dropped; ``default_material`` fills what nothing else does."""

    half_x: float
    half_y: float
    z_min: float
    z_max: float
    default_material: str = "air"


@dataclass(frozen=True)
class ShieldGeometry:
    """A complete shield design; see the module docstring for units."""

    name: str
    world: World
    target: Target
    magnets: tuple[Magnet, ...]
    shield_material: str
    planes: tuple[RecordingPlane, ...]
    blocks: tuple[Box, ...] = ()
    cavern_sections: tuple[Box, ...] = ()
    cavern_material: str | None = None
    target_z0: float = 0.0
    ntuple_z_shift: float = 5000.0
    field_model: FieldModel = FieldModel()
    decay_vessel: DecayVesselSection | None = None
    source: str | None = field(default=None, compare=False)

    @property
    def shield_z_start(self) -> float:
        return self.magnets[0].z_start

    @property
    def shield_z_end(self) -> float:
        return self.magnets[-1].z_end

    def plane_names(self) -> list[str]:
        """Names of the recording planes, in increasing z."""
        return [p.name for p in self.planes]

    def plane(self, name: str) -> RecordingPlane:
        for plane in self.planes:
            if plane.name == name:
                return plane
        raise KeyError(f"geometry {self.name!r} has no recording plane {name!r}; planes: "
                       f"{[p.name for p in self.planes]}")

    def material_names(self) -> list[str]:
        """Materials used by this geometry, index order of `GeometryLookup.material_at`."""
        names = [self.world.default_material, self.target.material, self.shield_material]
        names += [b.material for b in self.blocks]
        if self.cavern_material:
            names.append(self.cavern_material)
        return list(dict.fromkeys(names))


def _effective_gap(gap: float, dY: float, rule: str) -> float:
    # ShipMuonShield::CreateMagnet builds gap = ceil(max(100/dY, gap)) (coil space).
    return float(math.ceil(max(100.0 / dY, gap))) if rule == "fairship" else gap


def _field_model(entry: dict[str, Any], source: str | None, problems: list[str]) -> FieldModel:
    # Without a field section: FairShip's WithConstField mode, as before field models existed.
    model = entry.get("model", "constant")
    polarity = entry.get("polarity", "direction-list" if model == "constant" else "signed-B")
    map_file = entry.get("map")
    if (model == "map") != (map_file is not None):
        problems.append("shield.field.map: give a map file exactly when shield.field.model is 'map'")
    elif map_file is not None and source is not None and not Path(map_file).is_absolute():
        map_file = str(Path(source).parent / map_file)  # relative to the geometry file
    return FieldModel(model=model, polarity=polarity, map_file=map_file, map_z_offset=entry.get("map_z_offset"),
                      map_symmetric=entry.get("map_symmetric", True))


def geometry_from_dict(data: dict[str, Any], source: str | None = None) -> ShieldGeometry:
    """Validate a parsed geometry mapping and build the `ShieldGeometry`."""
    try:
        jsonschema.validate(data, GEOMETRY_SCHEMA)
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "<top>"
        raise GeometryError(f"{source or 'geometry'}: {where}: {error.message}") from None
    problems: list[str] = []
    shield = data["shield"]
    rule = shield.get("coil_gap_rule", "none")
    magnets, z = [], float(shield["z_start"])
    for i, entry in enumerate(shield["magnets"]):
        for name in MAGNET_PARAMETERS:
            value = entry[name]
            if name == "B":
                continue
            if value < 0 or (name not in _NONNEGATIVE and value <= 0):
                problems.append(f"magnet {i} ({entry['name']}): {name}={value} must be "
                                f"{'>= 0' if name in _NONNEGATIVE else '> 0'}")
        z += entry["Zgap"]
        values = {k: float(entry[k]) for k in MAGNET_PARAMETERS}
        magnets.append(Magnet(name=entry["name"], field_direction=entry["field_direction"], **values, z_start=z,
                              gap_in_eff=_effective_gap(values["gapIn"], max(values["dYIn"], 1e-9), rule),
                              gap_out_eff=_effective_gap(values["gapOut"], max(values["dYOut"], 1e-9), rule)))
        z += 2.0 * entry["dZ"]
    world = World(**data["world"])
    target = Target(**data["target"])
    blocks = tuple(Box(**b) for b in data.get("blocks", []))
    cavern = data.get("cavern")
    sections = tuple(Box(**s, material="air") for s in cavern["sections"]) if cavern else ()
    planes = tuple(RecordingPlane(**p) for p in data["planes"])
    used = [world.default_material, target.material, shield["material"], *(b.material for b in blocks)]
    used += [cavern["material"]] if cavern else []
    problems += [f"unknown material {m!r}; known: {sorted(MATERIALS)}" for m in used if m not in MATERIALS]
    zs = [p.z for p in planes]
    if zs != sorted(zs) or len(set(p.name for p in planes)) != len(planes):
        problems.append("recording planes must have distinct names and increasing z")
    if any(not world.z_min < p.z < world.z_max for p in planes):
        problems.append("every recording plane must lie inside the world's z range")
    for p in planes:
        if (p.aperture_half_x is None) != (p.aperture_half_y is None):
            problems.append(f"plane {p.name!r}: give both aperture half-widths or none")
    for box in (*blocks, *sections):
        if box.z_end <= box.z_start or box.x_max <= box.x_min or box.y_max <= box.y_min:
            problems.append(f"box {box.name!r} has a non-positive size")
    if target.length <= 0 or target.half_x <= 0 or target.half_y <= 0:
        problems.append("target sizes must be positive")
    vessel = DecayVesselSection(**data["decay_vessel"]) if "decay_vessel" in data else None
    if vessel is not None:
        entrance = next((p for p in planes if p.name == vessel.plane), None)
        if entrance is None or not entrance.has_aperture:
            problems.append(f"decay_vessel.plane: {vessel.plane!r} must name a recording plane with an aperture")
    field_model = _field_model(shield.get("field", {}), source, problems)
    if problems:
        raise GeometryError(f"{source or 'geometry'}: " + "; ".join(problems))
    frame = data.get("frame", {})
    return ShieldGeometry(
        name=data["name"], world=world, target=target, magnets=tuple(magnets), shield_material=shield["material"],
        planes=planes, blocks=blocks, cavern_sections=sections,
        cavern_material=cavern["material"] if cavern else None,
        target_z0=float(frame.get("target_z0", 0.0)), ntuple_z_shift=float(frame.get("ntuple_z_shift", 5000.0)),
        decay_vessel=vessel, field_model=field_model, source=source,
    )


def load_geometry(path: str | Path) -> ShieldGeometry:
    """Read, validate and build a geometry YAML file."""
    path = Path(path)
    with path.open() as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise GeometryError(f"{path}: expected a mapping at the top level")
    return geometry_from_dict(data, source=str(path))


# Keep the dataclass field list and the parameter tuple in step.
assert set(MAGNET_PARAMETERS) <= {f.name for f in fields(Magnet)}
