"""One magnet's cross-section and the field in each of its parts, as FairShip builds them.

Cross-section (ShipSoft/FairShip ``passive/ShipMuonShield.cxx``, ``CreateMagnet``):
each of the eight iron parts of a magnet is a ``TGeoArb8`` given by four (x, y)
corners at the In face and four at the Out face; the section at a depth f in
[0, 1] (In -> Out) has the four corners interpolated linearly.  In the first
quadrant (ax = |x|, ay = |y|; the other three are mirror images) the corners are

* core ``MiddleMagL``: (mid, dY + dY_yoke), (mid + dX, dY) and their y mirrors;
* return yoke ``MagRetL``: (mid + dX + gap, dY), (mid + dX + gap + w, dY + dY_yoke), mirrors;
* top yoke ``MagTopLeft``: (mid + dX, dY), (mid, dY + dY_yoke),
  (mid + dX + gap + w, dY + dY_yoke), (mid + dX + gap, dY);

with ``w = ratio_yokes * dX`` *taken at each face* (the outer corner is
``dX + ratio_yoke*dX + middleGap + gap`` at In and at Out) and the coil gap
``gap = ceil(max(100/dY, gap))`` per face.  Every corner coordinate is a sum of the
six quantities `SECTION_COLUMNS`, so interpolating those six linearly (and the
product ``w`` as one quantity, never ratio and dX separately) is interpolating every
corner linearly: `shipfastsim.geometry.kernel.part_code` is the only implementation
of the shape (scalar code that the transport kernel runs, and `GeometryLookup`,
the reference and the pictures through `SegmentGeometry.query`).

Field per part (`part_fields`), for ``FieldModel.model``:

* ``constant``: FairShip's ``WithConstField`` mode (``ConstructGeometry``: core
  (0, s B, 0), return yokes (0, -s B, 0), top/bottom yokes Bx = s B sign(x) sign(y));
* ``flux-conserving``: the uniform mode of the SHiP shield-optimisation code
  (lfpc/MuonsAndMatter ``python/lib/ship_muon_shield_customfield.py``,
  ``design_muon_shield``): core (0, s B, 0), return yokes (0, -s B / ratio_yokesIn, 0),
  top/bottom yokes Bx = s B sign(x) sign(y) / ratio_yokesIn (the In ratio for the
  whole magnet, one uniform field per part as there);
* ``map``: the field comes from a field-map file (`shipfastsim.geometry.fieldmap`).

The sign s B is ``FieldModel.polarity``: ``signed-B`` takes the signed B of the
15 parameters alone (the optimisation code, whose finite-element maps FairShip
reads for TRY_2025); ``direction-list`` multiplies it by FairShip's per-magnet
direction (``up`` +1, ``down`` -1) as ``ShipMuonShield::CreateMagnet`` does in
``WithConstField`` mode.  Lengths in cm, fields in tesla.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIELD_MODELS", "POLARITY_RULES", "PART_NAMES", "SECTION_COLUMNS", "FieldModel", "face_values",
           "part_fields", "signed_field"]

FIELD_MODELS = ("constant", "flux-conserving", "map")
POLARITY_RULES = ("signed-B", "direction-list")
#: Region codes 1, 2, 3 of `GeometryLookup.region_at` (0: no magnet iron).
PART_NAMES = ("core", "return", "yoke")
#: The six quantities whose linear interpolation moves every Arb8 corner linearly [cm]:
#: mid-gap, core width dX, coil gap, return-yoke width ratio*dX, half-gap height dY, yoke height dY_yoke.
SECTION_COLUMNS = ("mid", "dx", "gap", "ret_w", "dy", "dyy")


@dataclass(frozen=True)
class FieldModel:
    """Which field the magnets carry (see module docstring); for ``map`` the file, its
    z offset [cm] (None: the first magnet's entrance, as FairShip) and whether it holds
    one quadrant (`shipfastsim.geometry.fieldmap`)."""

    model: str = "constant"
    polarity: str = "direction-list"
    map_file: str | None = None
    map_z_offset: float | None = None
    map_symmetric: bool = True


def face_values(magnet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """`SECTION_COLUMNS` at the In face and at the Out face of a `Magnet` [cm]."""
    m = magnet
    inn = (m.midGapIn, m.dXIn, m.gap_in_eff, m.ratio_yokesIn * m.dXIn, m.dYIn, m.dY_yokeIn)
    out = (m.midGapOut, m.dXOut, m.gap_out_eff, m.ratio_yokesOut * m.dXOut, m.dYOut, m.dY_yokeOut)
    return inn, out


def signed_field(magnet, model: FieldModel) -> float:
    """The core's By [T] of a `Magnet`: s B with the sign rule ``model.polarity``."""
    if model.polarity == "signed-B":
        return magnet.B
    return magnet.B if magnet.field_direction == "up" else -magnet.B


def part_fields(magnet, model: FieldModel) -> tuple[float, float, float]:
    """(core By, return-yoke By, top/bottom-yoke Bx / (sign(x) sign(y))) [T] of a
    `Magnet` under ``model`` (zeros for ``map``: the map gives the field)."""
    if model.model == "map":
        return 0.0, 0.0, 0.0
    b = signed_field(magnet, model)
    yoke = b if model.model == "constant" else b / magnet.ratio_yokesIn
    return b, -yoke, yoke
