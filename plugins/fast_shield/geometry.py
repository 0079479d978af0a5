"""`SegmentGeometry`: the material and field of `GeometryLookup`, one gather per muon.

`GeometryLookup.query` loops over every magnet and box for every muon.  Here the z
axis is cut at ``GeometryLookup.z_boundaries()`` into segments; inside one segment at
most one magnet and a fixed, ordered list of boxes (cavern sections, blocks, target)
can apply.  A muon's segment is one ``searchsorted``; the parameters of its magnet and
boxes are one row gather from a per-segment table, after which the same cross-section
formulas as `GeometryLookup` (ShipMuonShield::CreateMagnet) give the material index
(into ``GeometryLookup.materials``) and the field (Bx, By) [T].  Bz is always 0.

Works in float32 or float64 on any device; lengths in cm.
"""

from __future__ import annotations

import torch

from shipfastsim.geometry import GeometryLookup
from shipfastsim.geometry.lookup import TARGET_INDEX

__all__ = ["SegmentGeometry", "MAGNET_COLUMNS"]

#: Per-segment magnet columns: the In value and the In->Out change of each parameter.
MAGNET_COLUMNS = ("has", "z0", "inv_len", "pol", "dx", "ddx", "dy", "ddy", "gap", "dgap", "ratio", "dratio",
                  "dyy", "ddyy", "mid", "dmid")


class SegmentGeometry:
    """Per-segment tables of one geometry (see module docstring)."""

    def __init__(self, lookup: GeometryLookup, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        g = lookup.geometry
        self.lookup, self.dtype, self.device = lookup, dtype, torch.device(device)
        edges = lookup.z_boundaries().tolist()
        # Segment s holds z in [edges[s-1], edges[s]); 0 and len(edges) are open-ended.
        mids = [edges[0] - 1.0] + [0.5 * (a + b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        mids.append(edges[-1] + 1.0)
        default = lookup.material_index(g.cavern_material) if g.cavern_sections else 0
        boxes_per_segment, magnets = [], []
        for z in mids:
            boxes = [(s.x_min, s.x_max, s.y_min, s.y_max, 0) for s in g.cavern_sections if s.z_start <= z < s.z_end]
            boxes += [(b.x_min, b.x_max, b.y_min, b.y_max, lookup.material_index(b.material))
                      for b in g.blocks if b.z_start <= z < b.z_end]
            t = g.target
            if t.z0 <= z < t.z_end:
                boxes.append((-t.half_x, t.half_x, -t.half_y, t.half_y, TARGET_INDEX))
            boxes_per_segment.append(boxes)
            magnet = next((m for m in g.magnets if m.z_start <= z < m.z_end), None)
            if magnet is None:
                magnets.append([0.0, 0.0, 1.0, 0.0] + [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
            else:
                m = magnet
                pairs = [(m.dXIn, m.dXOut), (m.dYIn, m.dYOut), (m.gap_in_eff, m.gap_out_eff),
                         (m.ratio_yokesIn, m.ratio_yokesOut), (m.dY_yokeIn, m.dY_yokeOut), (m.midGapIn, m.midGapOut)]
                magnets.append([1.0, m.z_start, 1.0 / (2.0 * m.dZ), m.polarity]
                               + [v for a, b in pairs for v in (a, b - a)])
        self.n_boxes = max(1, max(len(b) for b in boxes_per_segment))
        empty = (1.0, -1.0, 1.0, -1.0, 0)  # x_min > x_max: contains nothing
        box_rows = [[v for box in (b + [empty] * (self.n_boxes - len(b))) for v in box] for b in boxes_per_segment]
        kw = {"dtype": dtype, "device": self.device}
        self.edges = torch.tensor(edges, **kw)
        self.boxes = torch.tensor(box_rows, **kw)  # (S, 5 K): x_min, x_max, y_min, y_max, material
        self.magnets = torch.tensor(magnets, **kw)  # (S, len(MAGNET_COLUMNS))
        self.default_material = default
        self.iron = lookup.material_index(g.shield_material)
        zones = [(g.target.z0, g.target.z_end), (g.shield_z_start, g.shield_z_end)]
        zones += [(b.z_start, b.z_end) for b in g.blocks]
        #: Per segment: inside the z range of the target, a block or the magnets, where
        #: the reference uses its dense-material step even in air gaps.
        self.dense_zone = torch.tensor([any(a <= z < b for a, b in zones) for z in mids], device=self.device)
        upper = edges + [float("inf")]
        #: Per segment: z [cm] where it ends (the next boundary a step must not cross).
        self.segment_end = torch.tensor(upper, **kw)

    def segment(self, z: torch.Tensor) -> torch.Tensor:
        """Segment index of each z [cm]."""
        return torch.searchsorted(self.edges, z.contiguous(), right=True)

    def query(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, seg: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Material index (int64) and field Bx, By [T] at positions [cm]."""
        seg = self.segment(z) if seg is None else seg
        box = self.boxes.index_select(0, seg)
        material = torch.full_like(seg, self.default_material)
        for k in range(self.n_boxes):
            c = 5 * k
            inside = (x >= box[:, c]) & (x <= box[:, c + 1]) & (y >= box[:, c + 2]) & (y <= box[:, c + 3])
            material = torch.where(inside, box[:, c + 4].long(), material)
        mp = self.magnets.index_select(0, seg)
        has, z0, inv_len, pol = mp[:, 0], mp[:, 1], mp[:, 2], mp[:, 3]
        f = ((z - z0) * inv_len).clamp(0.0, 1.0)
        dx, dy, gap = mp[:, 4] + mp[:, 5] * f, mp[:, 6] + mp[:, 7] * f, mp[:, 8] + mp[:, 9] * f
        ratio, dyy, mid = mp[:, 10] + mp[:, 11] * f, mp[:, 12] + mp[:, 13] * f, mp[:, 14] + mp[:, 15] * f
        ax, ay = x.abs(), y.abs()
        x_core_out = mid + dx
        x_ret_in = x_core_out + gap
        ret_w = ratio * dx
        core = (ax >= mid) & (ax <= x_core_out) & (ay <= dy + dyy * (1.0 - (ax - mid) / dx))
        ret = (ax >= x_ret_in) & (ax <= x_ret_in + ret_w) & (ay <= dy + dyy * (ax - x_ret_in) / ret_w)
        t = (ay - dy) / dyy.clamp_min(1e-9)
        yoke = (ay >= dy) & (ay <= dy + dyy) & (ax >= mid + dx * (1.0 - t)) & (ax <= x_ret_in + ret_w * t)
        magnet = has > 0
        core, ret = core & magnet, ret & magnet
        yoke = yoke & magnet & ~core & ~ret  # the reference gives core, then return yoke, precedence
        material = torch.where(core | ret | yoke, self.iron, material)
        zero = torch.zeros_like(x)
        by = torch.where(core, pol, torch.where(ret, -pol, zero))
        bx = torch.where(yoke, pol * torch.sign(x) * torch.sign(y), zero)
        return material, bx, by
