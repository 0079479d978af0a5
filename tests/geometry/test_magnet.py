"""The magnet cross-section and part fields against hand values from FairShip's formulas.

Expected values are written here from ShipMuonShield::CreateMagnet's corner lists
(cornersMainL, cornersMainSideL, cornersTL) and ConstructGeometry's part fields,
and from lfpc/MuonsAndMatter's uniform mode for the flux-conserving model; they are
never computed with `shipfastsim.geometry.magnet`.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import GeometryLookup, geometry_from_dict

TRY2025 = GEOMETRY_DIR / "ship_try2025.yaml"
DELTA = 1e-6  # cm: the edges are checked to this
NONE, CORE, RETURN, YOKE = 0, 1, 2, 3


def _data(model: str | None = None, polarity: str | None = None) -> dict:
    data = yaml.safe_load(TRY2025.read_text())
    if model is not None:
        data["shield"]["field"] = {"model": model} | ({"polarity": polarity} if polarity else {})
    return data


def _lookup(model=None, polarity=None, data=None) -> GeometryLookup:
    return GeometryLookup(geometry_from_dict(data or _data(model, polarity)))


def _face_corners(p: dict, face: str) -> dict[str, float]:
    """The distinct corner coordinates of one face, as the corner arrays write them."""
    dx, dy, mid = p[f"dX{face}"], p[f"dY{face}"], p[f"midGap{face}"]
    gap = math.ceil(max(100.0 / dy, p[f"gap{face}"]))  # gap = ceil(max(100/dY, gap))
    ratio, dyy = p[f"ratio_yokes{face}"], p[f"dY_yoke{face}"]
    return {"X0": mid, "X1": dx + mid, "X2": dx + mid + gap,  # cornersMainL, cornersMainSideL
            "X3": dx + ratio * dx + mid + gap,  # cornersMainSideL / cornersTL outer corner
            "Y1": dy, "Y2": dy + dyy}


def _corners(p: dict, f: float) -> dict[str, float]:
    a, b = _face_corners(p, "In"), _face_corners(p, "Out")
    return {k: (1.0 - f) * a[k] + f * b[k] for k in a}  # each Arb8 corner linear in z


def _probes(c: dict[str, float]) -> list[tuple[float, float, int]]:
    """(x, y, expected part) on both sides of every edge of the first quadrant."""
    x0, x1, x2, x3, y1, y2 = (c[k] for k in ("X0", "X1", "X2", "X3", "Y1", "Y2"))
    ym, xg = 0.5 * (y1 + y2), 0.5 * (x1 + x2)
    out = [(x1 - DELTA, 0.0, CORE), (x1 + DELTA, 0.0, NONE), (x2 - DELTA, 0.0, NONE), (x2 + DELTA, 0.0, RETURN),
           (x3 - DELTA, 0.0, RETURN), (x3 + DELTA, 0.0, NONE),
           # at half the yoke height: core | yoke on the core's slant, yoke | return on the return's
           (0.5 * (x0 + x1) - DELTA, ym, CORE), (0.5 * (x0 + x1) + DELTA, ym, YOKE),
           (0.5 * (x2 + x3) - DELTA, ym, YOKE), (0.5 * (x2 + x3) + DELTA, ym, RETURN),
           # above the coil gap: the yoke's lower and upper faces
           (xg, y1 - DELTA, NONE), (xg, y1 + DELTA, YOKE), (xg, y2 - DELTA, YOKE), (xg, y2 + DELTA, NONE)]
    if x0 > 0:
        out += [(x0 - DELTA, 0.0, NONE), (x0 + DELTA, 0.0, CORE)]
    return out


@pytest.mark.parametrize("depth", ["In", "mid", "Out"])
def test_part_edges_match_fairship_corners(depth):
    data = _data()
    lookup = _lookup(data=data)
    checked = 0
    for entry, magnet in zip(data["shield"]["magnets"], lookup.geometry.magnets, strict=True):
        f = {"In": 0.0, "mid": 0.5, "Out": 1.0}[depth]
        z = magnet.z_start + f * 2.0 * magnet.dZ
        z = min(z, magnet.z_end - 1e-9)  # the Out face itself belongs to the next volume
        probes = _probes(_corners(entry, (z - magnet.z_start) / (2.0 * magnet.dZ)))
        for sx, sy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
            x = torch.tensor([sx * p[0] for p in probes], dtype=torch.float64)
            y = torch.tensor([sy * p[1] for p in probes], dtype=torch.float64)
            got = lookup.region_at(x, y, torch.full_like(x, z)).tolist()
            want = [p[2] for p in probes]
            assert got == want, f"{magnet.name} at {depth}, quadrant {sx, sy}: {list(zip(probes, got, strict=True))}"
            checked += len(probes)
    assert checked >= 6 * 4 * 14


def test_magn4_return_yoke_at_mid_length_is_fairships():
    # dX 31 -> 107.12, ratio 4.55 -> 0.63: outer edge (175.32 + 181.66)/2 + gap, not the bulge of ratio(z) dX(z).
    lookup = _lookup()
    m4 = lookup.geometry.magnets[4]
    z = torch.tensor([m4.z_start + m4.dZ] * 2, dtype=torch.float64)
    outer = 0.5 * ((31.0 + 4.55 * 31.0 + 6.0) + (107.12 + 0.63 * 107.12 + 5.0))
    names = lookup.region_names(torch.tensor([outer - DELTA, outer + DELTA], dtype=torch.float64), torch.zeros(2), z)
    assert names[0] == "Magn4/return" and names[1] != "Magn4/return"


def _part_points(entry: dict) -> tuple[torch.Tensor, torch.Tensor]:
    c = _corners(entry, 0.5)
    x = [0.5 * (c["X0"] + c["X1"]), 0.5 * (c["X2"] + c["X3"]), 0.5 * (c["X1"] + c["X2"])]
    y = [0.0, 0.0, 0.5 * (c["Y1"] + c["Y2"])]
    return torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)


@pytest.mark.parametrize("model, polarity", [("constant", "direction-list"), ("constant", "signed-B"),
                                             ("flux-conserving", "signed-B"),
                                             ("flux-conserving", "direction-list")])
def test_field_per_part(model, polarity):
    data = _data(model, polarity)
    lookup = _lookup(data=data)
    for entry, magnet in zip(data["shield"]["magnets"], lookup.geometry.magnets, strict=True):
        x, y = _part_points(entry)
        z = torch.full_like(x, magnet.z_start + magnet.dZ)
        s = 1.0 if polarity == "signed-B" or entry["field_direction"] == "up" else -1.0
        b = s * entry["B"]
        r = 1.0 if model == "constant" else entry["ratio_yokesIn"]
        for sx, sy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
            bx, by, bz = lookup.field_at(sx * x, sy * y, z)
            assert by.tolist() == pytest.approx([b, -b / r, 0.0], rel=1e-12), (magnet.name, sx, sy)
            assert bx.tolist() == pytest.approx([0.0, 0.0, sx * sy * b / r], rel=1e-12), (magnet.name, sx, sy)
            assert bz.abs().max() == 0.0


def test_default_is_flux_conserving_with_signed_b():
    g = _lookup().geometry
    assert (g.field_model.model, g.field_model.polarity) == ("flux-conserving", "signed-B")
    lookup = _lookup()
    m3 = g.magnets[3]  # ratio 60.44: 1.91 T in the core, 0.0316 T in the 165 cm wide return yoke
    z = torch.full((2,), m3.z_start + 1.0, dtype=torch.float64)
    _, by, _ = lookup.field_at(torch.tensor([1.5, 100.0]), torch.zeros(2), z)
    assert by.tolist() == pytest.approx([-1.91, 1.91 / 60.44], rel=1e-12)


@pytest.mark.parametrize("name", ["Magn1", "Magn2", "Magn3", "Magn4", "Magn5"])
def test_flux_conservation_at_the_in_face(name):
    """Integral of By over the core's section equals minus that over the return yokes."""
    lookup = _lookup()
    magnet = next(m for m in lookup.geometry.magnets if m.name == name)
    c = _corners(next(e for e in _data()["shield"]["magnets"] if e["name"] == name), 0.0)
    n = 300

    def flux(x_lo, x_hi):
        xs = torch.linspace(x_lo, x_hi, n + 1, dtype=torch.float64)
        ys = torch.linspace(-c["Y2"] - 1.0, c["Y2"] + 1.0, 2 * n + 1, dtype=torch.float64)
        xx, yy = torch.meshgrid(0.5 * (xs[1:] + xs[:-1]), 0.5 * (ys[1:] + ys[:-1]), indexing="ij")
        z = torch.full((xx.numel(),), magnet.z_start, dtype=torch.float64)
        _, by, _ = lookup.field_at(xx.reshape(-1), yy.reshape(-1), z)
        return by.sum().item() * (xs[1] - xs[0]).item() * (ys[1] - ys[0]).item()

    core, ret = flux(c["X0"], c["X1"]), flux(c["X2"], c["X3"])  # the x > 0 half
    print(f"{name}: core flux {core:.2f} T cm2, return {ret:.2f} T cm2")
    assert abs(core) > 10.0
    assert ret == pytest.approx(-core, rel=0.01)


def test_field_is_mirror_symmetric_and_flips_with_b():
    data = _data()
    flipped = copy.deepcopy(data)
    for entry in flipped["shield"]["magnets"]:
        entry["B"] = -entry["B"]
    normal, mirror = _lookup(data=data), _lookup(data=flipped)
    gen = torch.Generator().manual_seed(4)
    x, y = ((torch.rand(20_000, generator=gen, dtype=torch.float64) - 0.5) * 500 for _ in range(2))
    z = torch.rand(20_000, generator=gen, dtype=torch.float64) * 3000 + 200
    bx, by, _ = normal.field_at(x, y, z)
    bx_m, by_m, _ = normal.field_at(-x, y, z)
    assert torch.equal(by_m, by) and torch.equal(bx_m, -bx)  # By even, Bx odd in x
    bx_m, by_m, _ = normal.field_at(x, -y, z)
    assert torch.equal(by_m, by) and torch.equal(bx_m, -bx)  # and in y
    bx_f, by_f, _ = mirror.field_at(x, y, z)
    assert torch.equal(bx_f, -bx) and torch.equal(by_f, -by)
    assert (by != 0).float().mean() > 0.05 and (bx != 0).any()
