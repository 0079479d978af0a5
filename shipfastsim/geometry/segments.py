"""`SegmentGeometry`: material, field and region of a geometry, one table gather per point.

The z axis is cut at the geometry's z boundaries (target, blocks, cavern sections,
magnet faces, recording planes) into segments; inside one segment at most one
magnet and a fixed, ordered list of boxes (cavern sections, blocks, target) apply.
A point's segment is a binary search; the parameters of its magnet and boxes are
one row of a per-segment table, after which `kernel.part_code` gives the iron part
and the part fields (`magnet.part_fields`, tabulated) or the field map the field.
This is the only lookup: `query` runs the transport kernel's scalar lookup
(`shipfastsim.geometry.kernel.query_point`) on arrays of points for `GeometryLookup`,
the reference's stepping and the pictures.

Material indices refer to ``GeometryLookup.materials``; lengths in cm, fields in T.
"""

from __future__ import annotations

import torch

from shipfastsim.geometry.magnet import SECTION_COLUMNS, face_values, part_fields

__all__ = ["SegmentGeometry", "MAGNET_COLUMNS", "TARGET_INDEX"]

#: Index of the target in `GeometryLookup.materials`.
TARGET_INDEX = 1
#: Per-segment magnet columns: presence, z of the In face, 1/length, magnet index,
#: In value and In -> Out change of each `SECTION_COLUMNS`, then the part fields.
MAGNET_COLUMNS = ("has", "z0", "inv_len", "index", *(f"{c}{s}" for c in SECTION_COLUMNS for s in ("", "_d")),
                  "by_core", "by_return", "bx_yoke")
_EMPTY_MAGNET = [0.0, 0.0, 1.0, -1.0] + [1.0, 0.0] * len(SECTION_COLUMNS) + [0.0, 0.0, 0.0]


def _taper(geometry, z: float) -> tuple[float, float]:
    """Largest slopes |d edge / dz| of the x edges and of the y edges of the magnet at z (0, 0 outside)."""
    magnet = next((m for m in geometry.magnets if m.z_start <= z < m.z_end), None)
    if magnet is None:
        return 0.0, 0.0
    (mid, dx, gap, ret_w, dy, dyy), out = face_values(magnet)
    d = [b - a for a, b in zip((mid, dx, gap, ret_w, dy, dyy), out, strict=True)]
    x_edges = (d[0], d[0] + d[1], d[0] + d[1] + d[2], d[0] + d[1] + d[2] + d[3])
    length = magnet.z_end - magnet.z_start
    return max(abs(e) for e in x_edges) / length, max(abs(d[4]), abs(d[4] + d[5])) / length


class SegmentGeometry:
    """Per-segment tables of one geometry (see module docstring).

    Args:
        lookup: the `GeometryLookup` whose geometry, materials and field model to tabulate.
        device, dtype: where and in which precision the tables live.
    """

    def __init__(self, lookup, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
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
            index = next((i for i, m in enumerate(g.magnets) if m.z_start <= z < m.z_end), None)
            if index is None:
                magnets.append(list(_EMPTY_MAGNET))
                continue
            m = g.magnets[index]
            inn, out = face_values(m)
            magnets.append([1.0, m.z_start, 1.0 / (2.0 * m.dZ), float(index)]
                           + [v for a, b in zip(inn, out, strict=True) for v in (a, b - a)]
                           + list(part_fields(m, lookup.field_model)))
        self.n_boxes = max(1, max(len(b) for b in boxes_per_segment))
        empty = (1.0, -1.0, 1.0, -1.0, 0)  # x_min > x_max: contains nothing
        box_rows = [[v for box in (b + [empty] * (self.n_boxes - len(b))) for v in box] for b in boxes_per_segment]
        kw = {"dtype": dtype, "device": self.device}
        self.edges = torch.tensor(edges, **kw)
        # Stored column-major: gathering one column for every point is one contiguous
        # `index_select`, several times cheaper than rows of a (S, C) table.
        self.boxes = torch.tensor(box_rows, **kw).T.contiguous()  # (5 K, S): x_min, x_max, y_min, y_max, material
        self.magnets = torch.tensor(magnets, **kw).T.contiguous()  # (len(MAGNET_COLUMNS), S)
        self.default_material = default
        self.iron = lookup.material_index(g.shield_material)
        self.field_map = lookup.field_map.to(self.device, dtype) if lookup.field_map is not None else None
        zones = [(g.target.z0, g.target.z_end), (g.shield_z_start, g.shield_z_end)]
        zones += [(b.z_start, b.z_end) for b in g.blocks]
        #: Per segment: inside the z range of the target, a block or the magnets, where
        #: the transports use their dense-material step even in air gaps.
        self.dense_zone = torch.tensor([any(a <= z < b for a, b in zones) for z in mids], device=self.device)
        #: Per segment: z [cm] where it starts and where it ends (the next boundary a step must not cross).
        self.segment_start = torch.tensor([float("-inf")] + edges, **kw)
        self.segment_end = torch.tensor(edges + [float("inf")], **kw)
        #: Per segment: the largest |d edge / dz| of the magnet's vertical (x) and horizontal
        #: (y) cross-section edges (tapered magnets), for the lateral safety of long steps.
        self.taper_x, self.taper_y = torch.tensor([_taper(g, z) for z in mids], **kw).T.contiguous()
        #: Per segment: number of boxes (padded rows of `boxes` come last).
        self.box_count = torch.tensor([len(b) for b in boxes_per_segment], device=self.device)
        self._kernel = None  # `kernel.GeometryArrays` of these tables, built on the first query

    def segment(self, z: torch.Tensor) -> torch.Tensor:
        """Segment index of each z [cm]."""
        return torch.searchsorted(self.edges, z.contiguous(), right=True)

    def query(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, seg: torch.Tensor | None = None,
              with_region: bool = False, with_safety: bool = False):
        """Material index (int64) and field Bx, By, Bz [T] at positions [cm]; with
        ``with_region`` also the magnet index (-1 outside magnets) and the part code
        (0 none, 1 core, 2 return yoke, 3 top/bottom yoke); with ``with_safety`` (instead)
        the lateral safeties (sx, sy) [cm] of points inside a magnet's z range: the
        distances in |x| to the nearest vertical edge of the cross-section (the core's
        inner edge only where the two cores are apart) and in |y| to the yoke band
        dY .. dY + dY_yoke; 0 inside that band (its edges are slanted), outside the
        magnet's outer envelope (|x| beyond the return yoke, |y| beyond the yoke) and
        outside magnets.

        The lookup is `shipfastsim.geometry.kernel.query_point`, the scalar code the
        transport kernel runs, applied to every point (float64; the results come back on
        the points' device, fields in their precision); ``seg`` is accepted for the
        callers that know it and otherwise found again."""
        from shipfastsim.geometry.kernel import kernel_arrays, query_points

        if self._kernel is None:
            self._kernel = kernel_arrays(self)
        like = torch.as_tensor(x)
        out = torch.from_numpy(query_points(self._kernel, *(torch.as_tensor(v).detach().to("cpu", torch.float64)
                                                            .reshape(-1).numpy() for v in (x, y, z))))
        dtype = like.dtype if like.is_floating_point() else torch.float64
        material = out[:, 0].to(like.device, torch.int64)
        bx, by, bz = (out[:, k].to(like.device, dtype) for k in (1, 2, 3))
        if with_safety:
            return material, bx, by, bz, out[:, 6].to(like.device, dtype), out[:, 7].to(like.device, dtype)
        if not with_region:
            return material, bx, by, bz
        part, index = out[:, 4].to(like.device, torch.int64), out[:, 5].to(like.device, torch.int64)
        return material, bx, by, bz, index, part
