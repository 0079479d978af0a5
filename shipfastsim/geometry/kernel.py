"""The geometry lookup of the compiled transport kernel: one point at a time, same tables.

`SegmentGeometry` cuts z into segments and tabulates, per segment, its boxes (cavern
sections, blocks, target) and its magnet (the In values and In -> Out changes of
`magnet.SECTION_COLUMNS`, the part fields); `kernel_arrays` hands those tables to the
kernel as one tuple of float64/int64 numpy arrays (`GeometryArrays`), and `query_point`
answers material, field, magnet part and lateral safeties for one point, with the
same rules as `SegmentGeometry.query`: the last box containing the point sets the
material, magnet iron overrides it, the field is the part's uniform field or the
field map's trilinear value (FairShip's ``ShipBFieldMap::Field``, `fieldmap`).

Every function is `jitable` scalar code (`shipfastsim.transport.jit`): compiled into
the CPU and CUDA kernels alike.  Lengths in cm, fields in tesla.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from shipfastsim.transport.jit import jitable

__all__ = ["GeometryArrays", "kernel_arrays", "segment_of", "follow_segment", "part_code", "field_map_value",
           "query_point", "query_points", "field_map_points"]


class GeometryArrays(NamedTuple):
    """`SegmentGeometry`'s tables for the kernel (numpy, float64 unless said)."""

    edges: np.ndarray  # (E,) z boundaries; segment s holds [edges[s-1], edges[s])
    seg_start: np.ndarray  # (E+1,) z where each segment starts (-inf first)
    seg_end: np.ndarray  # (E+1,) z where it ends (+inf last)
    boxes: np.ndarray  # (E+1, K, 5) x_min, x_max, y_min, y_max, material
    box_count: np.ndarray  # (E+1,) int64
    magnets: np.ndarray  # (E+1, len(MAGNET_COLUMNS))
    dense_zone: np.ndarray  # (E+1,) 1 inside the z range of target, blocks, magnets
    taper: np.ndarray  # (E+1, 2) largest |d edge / dz| of the x and y edges
    ints: np.ndarray  # int64: default material, iron index, has field map, map symmetric
    map_grid: np.ndarray  # (Nx, Ny, Nz, 3) [T] (a 2x2x2 zero grid without a map)
    map_frame: np.ndarray  # (9,) lower (3), step (3), offset (3) [cm]


def kernel_arrays(segments) -> GeometryArrays:
    """`GeometryArrays` of a `SegmentGeometry` (any precision: converted to float64)."""
    import torch

    def f64(t):
        return np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy())

    n_seg = segments.segment_start.numel()
    boxes = f64(segments.boxes).T.reshape(n_seg, segments.n_boxes, 5)
    fmap = segments.field_map
    grid = np.zeros((2, 2, 2, 3)) if fmap is None else f64(fmap.grid)
    frame = np.zeros(9) if fmap is None else np.array([*fmap.lower, *fmap.step, *fmap.offset], dtype=np.float64)
    ints = np.array([segments.default_material, segments.iron, fmap is not None,
                     fmap is not None and fmap.symmetric], dtype=np.int64)
    return GeometryArrays(f64(segments.edges), f64(segments.segment_start), f64(segments.segment_end),
                          np.ascontiguousarray(boxes), segments.box_count.to("cpu", torch.int64).numpy().copy(),
                          np.ascontiguousarray(f64(segments.magnets).T), f64(segments.dense_zone.double()),
                          np.ascontiguousarray(np.stack([f64(segments.taper_x), f64(segments.taper_y)], 1)),
                          ints, np.ascontiguousarray(grid), frame)


@jitable
def segment_of(edges, z):
    """Segment index of z [cm]: the number of boundaries at or below z."""
    lo, hi = 0, edges.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if edges[mid] <= z:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jitable
def follow_segment(geo, seg, z):
    """Segment of z [cm] for a point that was in segment ``seg`` before a move (a
    neighbour in one comparison; searched again after a longer move)."""
    if z >= geo.seg_end[seg]:
        seg += 1
    elif z < geo.seg_start[seg]:
        seg -= 1
    if z < geo.seg_start[seg] or z >= geo.seg_end[seg]:
        seg = segment_of(geo.edges, z)
    return seg


@jitable
def part_code(ax, ay, mid, dx, gap, ret_w, dy, dyy):
    """Magnet part at (|x|, |y|) [cm] of the section (`magnet.SECTION_COLUMNS`): 0 none,
    1 core, 2 return yoke, 3 top/bottom yoke (FairShip's Arb8 quadrilaterals, `magnet`)."""
    x_ret = mid + dx + gap
    if mid <= ax <= mid + dx and ay <= dy + dyy * (1.0 - (ax - mid) / dx):
        return 1
    if x_ret <= ax <= x_ret + ret_w and ay <= dy + dyy * (ax - x_ret) / ret_w:
        return 2
    t = (ay - dy) / max(dyy, 1e-9)
    if dy <= ay <= dy + dyy and mid + dx * (1.0 - t) <= ax <= x_ret + ret_w * t:
        return 3
    return 0


@jitable
def _map_axis(u, lower, step, n):
    """(node below, fraction) of coordinate u on one map axis; node -1 outside the map."""
    dist = (u - lower) / step
    if dist < 0.0 or dist > n - 1 + 1e-6:
        return -1, 0.0
    i = min(max(math.floor(dist), 0.0), n - 2.0)
    return int(i), min(max(dist - i, 0.0), 1.0)  # the last cell takes its upper node (weight 1)


@jitable
def field_map_value(grid, frame, symmetric, x, y, z):
    """(Bx, By, Bz) [T] at (x, y, z) [cm] of the map ``grid`` (Nx, Ny, Nz, 3) [T] whose
    ``frame`` holds its lower corner, node spacing and offset [cm] (`fieldmap`: FairShip's
    ``ShipBFieldMap::Field``)."""
    lx, ly, lz = x - frame[6], y - frame[7], z - frame[8]
    sign_x, sign_z = 1.0, 1.0
    if symmetric:  # one quadrant: Bx odd in x and y, Bz odd in y, By even
        if ly < 0.0:
            sign_z = -1.0
        sign_x = (-1.0 if lx < 0.0 else 1.0) * sign_z
        lx, ly = abs(lx), abs(ly)
    i, fx = _map_axis(lx, frame[0], frame[3], grid.shape[0])
    j, fy = _map_axis(ly, frame[1], frame[4], grid.shape[1])
    k, fz = _map_axis(lz, frame[2], frame[5], grid.shape[2])
    if i < 0 or j < 0 or k < 0:
        return 0.0, 0.0, 0.0
    bx = by = bz = 0.0
    for di in range(2):
        wx = fx if di else 1.0 - fx
        for dj in range(2):
            wy = fy if dj else 1.0 - fy
            for dk in range(2):
                w = wx * wy * (fz if dk else 1.0 - fz)
                bx += w * grid[i + di, j + dj, k + dk, 0]
                by += w * grid[i + di, j + dj, k + dk, 1]
                bz += w * grid[i + di, j + dj, k + dk, 2]
    return bx * sign_x, by, bz * sign_z


@jitable
def _sign(v):
    return 1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0)


@jitable
def _box_walls(geo, seg, x, y):
    """Distances [cm] in x and in y from (x, y) to the nearest wall of any box of segment
    ``seg`` (cavern sections, blocks, target), whether or not it contains the point."""
    wall_x = wall_y = 1e9
    for k in range(geo.box_count[seg]):
        box = geo.boxes[seg, k]
        wall_x = min(wall_x, abs(x - box[0]), abs(x - box[1]))
        wall_y = min(wall_y, abs(y - box[2]), abs(y - box[3]))
    return wall_x, wall_y


@jitable
def query_point(geo, x, y, z, seg):
    """At (x, y, z) [cm] in segment ``seg``: material index, field (Bx, By, Bz) [T],
    magnet part (`part_code`), magnet index (-1 outside magnet iron) and the lateral
    safeties (sx, sy) [cm] of `SegmentGeometry.query`: inside a magnet's outer envelope
    the distances to its nearest edges; beside or above it (no field map) the distance
    to the envelope and to the boxes' walls; 0 outside magnets' z ranges."""
    material = geo.ints[0]
    for k in range(geo.box_count[seg]):
        box = geo.boxes[seg, k]
        if box[0] <= x <= box[1] and box[2] <= y <= box[3]:
            material = int(box[4])
    bx = by = bz = 0.0
    part, index, sx, sy = 0, -1, 0.0, 0.0
    mag = geo.magnets[seg]
    if mag[0] > 0.0:
        f = min(max((z - mag[1]) * mag[2], 0.0), 1.0)
        mid, dx, gap = mag[4] + mag[5] * f, mag[6] + mag[7] * f, mag[8] + mag[9] * f
        ret_w, dy, dyy = mag[10] + mag[11] * f, mag[12] + mag[13] * f, mag[14] + mag[15] * f
        ax, ay = abs(x), abs(y)
        part = part_code(ax, ay, mid, dx, gap, ret_w, dy, dyy)
        if part > 0:
            material, index = geo.ints[1], int(mag[3])
            if part == 1:
                by = mag[16]
            elif part == 2:
                by = mag[17]
            else:
                bx = mag[18] * _sign(x) * _sign(y)
        x_ret = mid + dx + gap
        if ax <= x_ret + ret_w and ay <= dy + dyy:  # inside the outer envelope
            sx = min(abs(ax - (mid + dx)), abs(ax - x_ret), abs(ax - (x_ret + ret_w)))
            if mid > 0.0:
                sx = min(sx, abs(ax - mid))
            sy = 0.0 if dy <= ay <= dy + dyy else min(abs(ay - dy), abs(ay - (dy + dyy)))
        elif not geo.ints[2]:  # beside or above the magnet, where (no field map) there is no field
            wall_x, wall_y = _box_walls(geo, seg, x, y)
            if ax > x_ret + ret_w:  # the gap in x to the envelope keeps any move in y clear of it
                sx, sy = min(ax - (x_ret + ret_w), wall_x), wall_y
            else:
                sx, sy = wall_x, min(ay - (dy + dyy), wall_y)
    if geo.ints[2]:
        bx, by, bz = field_map_value(geo.map_grid, geo.map_frame, geo.ints[3], x, y, z)
    return material, bx, by, bz, part, index, sx, sy


_LOOPS: dict = {}


def _loops():
    """The array loops over `query_point` and `field_map_value` (compiled on first use)."""
    if not _LOOPS:
        from shipfastsim.transport.jit import numba

        nb = numba()

        @nb.njit(parallel=True, error_model="numpy")
        def points(geo, x, y, z, out):
            for i in nb.prange(x.shape[0]):
                m, bx, by, bz, part, index, sx, sy = query_point(geo, x[i], y[i], z[i], segment_of(geo.edges, z[i]))
                out[i, 0], out[i, 1], out[i, 2], out[i, 3] = m, bx, by, bz
                out[i, 4], out[i, 5], out[i, 6], out[i, 7] = part, index, sx, sy

        @nb.njit(parallel=True, error_model="numpy")
        def field(grid, frame, symmetric, x, y, z, out):
            for i in nb.prange(x.shape[0]):
                out[i, 0], out[i, 1], out[i, 2] = field_map_value(grid, frame, symmetric, x[i], y[i], z[i])

        _LOOPS.update(points=points, field=field)
    return _LOOPS


def query_points(geo: GeometryArrays, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """`query_point` at arrays of positions [cm] (float64): (N, 8) material, Bx, By, Bz
    [T], part, magnet index, sx, sy [cm]."""
    out = np.empty((len(x), 8))
    _loops()["points"](geo, *(np.ascontiguousarray(v, dtype=np.float64) for v in (x, y, z)), out)
    return out


def field_map_points(grid: np.ndarray, frame: np.ndarray, symmetric: bool, x, y, z) -> np.ndarray:
    """`field_map_value` at arrays of positions [cm]: (N, 3) Bx, By, Bz [T]."""
    out = np.empty((len(x), 3))
    _loops()["field"](np.ascontiguousarray(grid, dtype=np.float64), np.ascontiguousarray(frame, dtype=np.float64),
                      bool(symmetric), *(np.ascontiguousarray(v, dtype=np.float64) for v in (x, y, z)), out)
    return out
