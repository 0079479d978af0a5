"""`SegmentGeometry` in the transports' float32 gives the float64 lookup's material and field."""

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
