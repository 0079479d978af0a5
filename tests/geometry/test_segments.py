"""`SegmentGeometry` gives exactly `GeometryLookup`'s material and field."""

import pytest
import torch

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import GeometryLookup, load_geometry
from shipfastsim.plugins.fast_shield.geometry import SegmentGeometry


@pytest.mark.parametrize("name", ["ship_try2025.yaml", "test_short_shield.yaml"])
def test_segment_geometry_matches_lookup(name):
    lookup = GeometryLookup(load_geometry(GEOMETRY_DIR / name))
    fast = SegmentGeometry(lookup, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    # Half the points near the magnets (where the cross-sections are), half anywhere.
    scale = torch.where(torch.arange(n) < n // 2, 300.0, 1500.0).double()
    x = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 2 * scale
    y = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 2 * scale
    z = torch.rand(n, generator=gen, dtype=torch.float64) * 3800.0 - 200.0
    material, bx, by, bz = lookup.query(x, y, z)
    mine, mbx, mby = fast.query(x, y, z)
    assert torch.equal(material, mine)
    assert torch.equal(bx, mbx) and torch.equal(by, mby)
    assert (bz == 0).all()
    assert len(torch.unique(material)) >= 3 and (by != 0).any() and (bx != 0).any()


def test_float32_geometry_agrees_away_from_edges():
    lookup = GeometryLookup(load_geometry(GEOMETRY_DIR / "ship_try2025.yaml"))
    fast = SegmentGeometry(lookup, dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    x, y = ((torch.rand(100_000, generator=gen, dtype=torch.float64) - 0.5) * 600 for _ in range(2))
    z = torch.rand(100_000, generator=gen, dtype=torch.float64) * 3300.0
    material = lookup.material_at(x, y, z)
    mine = fast.query(x.float(), y.float(), z.float())[0]
    # Only points within float32 rounding of a surface may differ.
    assert (material != mine).float().mean() < 1e-3
