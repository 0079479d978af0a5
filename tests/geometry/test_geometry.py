"""Geometry YAML loading, validation and the vectorised lookups."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import MAGNET_PARAMETERS, GeometryError, GeometryLookup, geometry_from_dict, load_geometry
from shipfastsim.units import FairShipFrame

TRY2025 = GEOMETRY_DIR / "ship_try2025.yaml"
SHORT = GEOMETRY_DIR / "test_short_shield.yaml"


def test_try2025_positions_match_fairship():
    g = load_geometry(TRY2025)
    assert [m.name for m in g.magnets] == ["MagnAbsorb", "Magn1", "Magn2", "Magn3", "Magn4", "Magn5"]
    # geometry_config.py: hadron absorber at target length + 45.36 cm = 204 cm; shield end 3148.66 cm.
    assert g.shield_z_start == pytest.approx(204.0)
    assert g.shield_z_end == pytest.approx(3148.66)
    assert g.magnets[1].z_start == pytest.approx(455.0)  # MagnAbsorb 2*115.5 + Zgap 20
    assert g.plane("decay_vessel").z == pytest.approx(3312.0)
    # The ntuple frame maps the target start (z = -50 m) to the target z0 of the geometry.
    assert FairShipFrame(g.target_z0).z_from_ntuple(-50.0) == pytest.approx(g.target.z0)
    for m in g.magnets:
        assert set(m.parameters()) == set(MAGNET_PARAMETERS)


def test_second_design_is_different_and_valid():
    a, b = load_geometry(TRY2025), load_geometry(SHORT)
    assert len(b.magnets) == 2 and b.magnets[1].polarity < 0 < b.magnets[0].polarity
    assert a.shield_z_end != b.shield_z_end


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["shield"]["magnets"][0].pop("dXIn"), "dXIn"),
    (lambda d: d["shield"]["magnets"][1].__setitem__("dZ", -5.0), "dZ"),
    (lambda d: d["shield"]["magnets"][0].__setitem__("field_direction", "sideways"), "field_direction"),
    (lambda d: d["target"].__setitem__("material", "unobtainium"), "unobtainium"),
    (lambda d: d["planes"].reverse(), "increasing z"),
    (lambda d: d["planes"][1].pop("aperture_half_y"), "aperture"),
])
def test_invalid_geometries_are_rejected(edit, message):
    data = yaml.safe_load(SHORT.read_text())
    broken = copy.deepcopy(data)
    edit(broken)
    with pytest.raises(GeometryError, match=message):
        geometry_from_dict(broken)


def test_field_regions_and_polarity():
    data = yaml.safe_load(TRY2025.read_text())
    data["shield"]["field"] = {"model": "constant"}  # FairShip's WithConstField mode
    g = geometry_from_dict(data)
    lookup = GeometryLookup(g)
    m1 = g.magnets[1]
    z = torch.full((5,), m1.z_start + 1.0, dtype=torch.float64)
    # core, return yoke (x = dX + gap + 10), top yoke, gap between core and return, far outside
    x = torch.tensor([10.0, 67.1 + 5.0 + 10.0, 70.0, 67.1 + 2.5, 400.0], dtype=torch.float64)
    y = torch.tensor([0.0, 0.0, 27.0 + 30.0, 0.0, 0.0], dtype=torch.float64)
    bx, by, bz = lookup.field_at(x, y, z)
    assert by[0] == pytest.approx(1.9) and by[1] == pytest.approx(-1.9)
    assert bx[2] == pytest.approx(1.9) and by[2] == 0.0
    assert by[3] == 0.0 and bx[3] == 0.0 and by[4] == 0.0
    bx_m, _, _ = lookup.field_at(-x, y, z)
    assert bx_m[2] == pytest.approx(-1.9)  # Bx = s B sign(x) sign(y)
    assert torch.all(bz == 0)
    mats = [lookup.materials[i][0] for i in lookup.material_at(x, y, z).tolist()]
    assert mats[:3] == ["iron"] * 3 and mats[3] == "air"
    # Magn4 is "down" with B = -1.91: in the constant model (direction list) its core field is +1.91 T.
    m4 = g.magnets[4]
    _, by4, _ = lookup.field_at(torch.tensor([5.0]), torch.tensor([0.0]), torch.tensor([m4.z_start + 1.0]))
    assert by4.item() == pytest.approx(1.91)


def test_materials_target_block_and_cavern():
    lookup = GeometryLookup(load_geometry(TRY2025))
    names = lambda i: [lookup.materials[k] for k in i.tolist()]  # noqa: E731
    x = torch.tensor([0.0, 0.0, 300.0, 0.0, 0.0], dtype=torch.float64)
    y = torch.tensor([0.0, 0.0, 0.0, -250.0, 0.0], dtype=torch.float64)
    z = torch.tensor([50.0, 180.0, 300.0, 1000.0, 3200.0], dtype=torch.float64)
    assert names(lookup.material_at(x, y, z)) == [
        ("tungsten", 0.94554), ("copper", 1.0), ("iron", 1.0), ("concrete", 1.0), ("air", 1.0)]


def test_geometry_show_writes_png(tmp_path):
    from shipfastsim.cli import main

    out = tmp_path / "short.png"
    assert main(["geometry", "show", str(SHORT), "--output", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
