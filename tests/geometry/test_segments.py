"""`SegmentGeometry` in the transports' float32 gives the float64 lookup's material and field."""

import pytest
import torch

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import GeometryLookup, load_geometry
from shipfastsim.geometry.segments import SegmentGeometry


def test_float32_geometry_agrees_away_from_edges():
    lookup = GeometryLookup(load_geometry(GEOMETRY_DIR / "ship_try2025.yaml"))
    fast = SegmentGeometry(lookup, dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    x, y = ((torch.rand(100_000, generator=gen, dtype=torch.float64) - 0.5) * 600 for _ in range(2))
    z = torch.rand(100_000, generator=gen, dtype=torch.float64) * 3300.0
    material, bx, by, _ = lookup.query(x, y, z)
    mine, mbx, mby, mbz = fast.query(x.float(), y.float(), z.float())
    # Only points within float32 rounding of a surface may differ.
    same = (material == mine) & (bx.float() == mbx) & (by.float() == mby)
    assert (~same).float().mean() < 1e-3
    assert (mbz == 0).all() and len(torch.unique(material)) >= 4 and (by != 0).any() and (bx != 0).any()


def _magn1_in_face():
    """Magn1's In-face edges [cm] from its FairShip parameters (corner formulas of
    ShipMuonShield::CreateMagnet): core |x| <= dX (the two cores touch, midGap 0),
    return yoke from dX + gap to dX + gap + ratio dX, yoke band dY .. dY + dY_yoke."""
    geometry = load_geometry(GEOMETRY_DIR / "ship_try2025.yaml")
    m = next(m for m in geometry.magnets if m.name == "Magn1")
    assert m.midGapIn == 0.0
    x_edges = (m.dXIn, m.dXIn + m.gap_in_eff, m.dXIn + m.gap_in_eff + m.ratio_yokesIn * m.dXIn)
    return geometry, m, x_edges, (m.dYIn, m.dYIn + m.dY_yokeIn)


def test_lateral_safety_by_hand_at_the_in_face_of_magn1():
    geometry, m, x_edges, (dy, dy_top) = _magn1_in_face()
    table = SegmentGeometry(GeometryLookup(geometry), dtype=torch.float64)
    points = [(30.0, 10.0), (-100.0, 50.0), (80.0, -5.0), (5.0, 3.0)]
    x = torch.tensor([p[0] for p in points], dtype=torch.float64)
    y = torch.tensor([p[1] for p in points], dtype=torch.float64)
    z = torch.full_like(x, m.z_start)
    *_, sx, sy = table.query(x, y, z, with_safety=True)
    for k, (px, py) in enumerate(points):
        ax, ay = abs(px), abs(py)
        in_band = dy <= ay <= dy_top
        assert sx[k].item() == pytest.approx(min(abs(ax - e) for e in x_edges), rel=1e-9), (px, py)
        assert sy[k].item() == pytest.approx(0.0 if in_band else min(abs(ay - dy), abs(ay - dy_top)), abs=1e-9)
    # Between two magnets there are no edges to be far from: no long steps.
    *_, sx, sy = table.query(x, y, torch.full_like(x, 0.5 * (m.z_start + geometry.magnets[0].z_end)),
                             with_safety=True)
    assert (sx == 0).all() and (sy == 0).all()
    # Beyond the return yoke or above the top yoke (cavern air, no field): the distance
    # to the magnet's envelope across the gap, and to the nearest wall of the boxes of
    # that z (cavern sections, blocks) along the other axis, and along the gap's too if
    # nearer; the last point is inside the envelope, in the yoke band.
    outside = [(x_edges[2] + 20.0, 10.0), (-30.0, dy_top + 15.0), (x_edges[2] - 0.5, dy_top - 0.5)]
    x = torch.tensor([p[0] for p in outside], dtype=torch.float64)
    y = torch.tensor([p[1] for p in outside], dtype=torch.float64)
    *_, sx, sy = table.query(x, y, torch.full_like(x, m.z_start), with_safety=True)
    boxes = [b for b in (*geometry.cavern_sections, *geometry.blocks) if b.z_start <= m.z_start < b.z_end]
    assert boxes, "the magnet sits in the cavern"

    def walls(px, py):
        return (min(min(abs(px - b.x_min), abs(px - b.x_max)) for b in boxes),
                min(min(abs(py - b.y_min), abs(py - b.y_max)) for b in boxes))

    (wx0, wy0), (wx1, wy1) = walls(*outside[0]), walls(*outside[1])
    assert sx.tolist() == pytest.approx([min(20.0, wx0), wx1, 0.5], abs=1e-9)
    assert sy.tolist() == pytest.approx([wy0, min(15.0, wy1), 0.0], abs=1e-9)
    assert sx[0] == pytest.approx(20.0) and sy[1] == pytest.approx(15.0)  # the walls are farther here


def test_taper_of_magn4_by_hand():
    geometry = load_geometry(GEOMETRY_DIR / "ship_try2025.yaml")
    table = SegmentGeometry(GeometryLookup(geometry), dtype=torch.float64)
    m = next(m for m in geometry.magnets if m.name == "Magn4")
    length = m.z_end - m.z_start
    x_in = (m.midGapIn + m.dXIn, m.midGapIn + m.dXIn + m.gap_in_eff,
            m.midGapIn + m.dXIn + m.gap_in_eff + m.ratio_yokesIn * m.dXIn)
    x_out = (m.midGapOut + m.dXOut, m.midGapOut + m.dXOut + m.gap_out_eff,
             m.midGapOut + m.dXOut + m.gap_out_eff + m.ratio_yokesOut * m.dXOut)
    slopes = [abs(b - a) / length for a, b in zip(x_in, x_out, strict=True)] + [abs(m.midGapOut - m.midGapIn) / length]
    seg = table.segment(torch.tensor([0.5 * (m.z_start + m.z_end)], dtype=torch.float64))
    assert table.taper_x[seg].item() == pytest.approx(max(slopes), rel=1e-9)
    y_slope = max(abs(m.dYOut - m.dYIn), abs(m.dYOut + m.dY_yokeOut - m.dYIn - m.dY_yokeIn)) / length
    assert table.taper_y[seg].item() == pytest.approx(y_slope, rel=1e-9)
