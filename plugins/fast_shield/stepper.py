"""`FastTransport`: a whole chunk of muons through the shield as tensor operations.

Per step, for every live muon (one tensor element each, no loop over muons):

1. step length L [cm]: ``dense_step`` in dense matter or inside the target/block/magnet
   z range, ``air_step`` elsewhere; shortened so that a muon loses at most
   ``loss_fraction`` of E, bends by at most ``max_bend`` rad, and ends just past the
   next z boundary of the geometry (magnet faces, recording planes);
2. material and field at the straight-line midpoint (`SegmentGeometry`, the same
   model as `GeometryLookup`); exact helix in that field;
3. energy loss, scattering angle and lateral displacement drawn from the step tables
   (`TableSampler`: one uniform number and one gather each);
4. record the muons crossing the plane; drop muons below ``min_momentum``, outside the
   world box, moving backwards, or past the plane.

Muons that finish are removed from the active set.  The only randomness is the
``torch.Generator`` passed in (on the device), so a seed gives the same muons on a
given device.  Units: cm, GeV/c, tesla.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from shipfastsim.geometry import GeometryLookup, ShieldGeometry, get_material
from shipfastsim.geometry.segments import SegmentGeometry
from shipfastsim.plugins.fast_shield.sampler import TableSampler, highland_sigma
from shipfastsim.plugins.fast_shield.tables import StepTables
from shipfastsim.units import C_LIGHT, MUON_MASS

__all__ = ["FastSettings", "PlaneHits", "FastTransport", "C_LIGHT", "helix"]



@dataclass(frozen=True)
class FastSettings:
    """Step control [cm, rad], stopping momentum [GeV/c] and arithmetic precision."""

    dense_step: float = 20.0
    air_step: float = 40.0
    loss_fraction: float = 0.1
    max_bend: float = 0.1
    min_momentum: float = 0.5
    dtype: torch.dtype = torch.float32
    compile: bool = False


@dataclass
class PlaneHits:
    """Per recording plane and input muon: whether it reached the plane, its state
    there (x, y, z, px, py, pz) [cm, GeV/c] (NaN if not), whether it was inside the
    plane's aperture (planes with one); and the number of steps the chunk took."""

    reached: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    in_aperture: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0


def helix(x, y, z, ux, uy, uz, p, q, bx, by, length):
    """Exact helix of ``length`` [cm] in the uniform field (bx, by, 0) [T]: the
    direction rotates about b = B/|B| by -k L, k = C_LIGHT q |B| / p."""
    b = torch.sqrt(bx * bx + by * by)
    safe = torch.where(b > 0, b, torch.ones_like(b))
    nx, ny = bx / safe, by / safe
    phi = C_LIGHT * q * b / p * length
    u_par = ux * nx + uy * ny  # component along b (b has no z component)
    px_, py_, pz_ = ux - u_par * nx, uy - u_par * ny, uz  # perpendicular part
    cx, cy, cz = ny * pz_, -nx * pz_, nx * py_ - ny * px_  # b x u_perp
    cos, sin = torch.cos(phi), torch.sin(phi)
    small = phi.abs() < 1e-4
    phi_safe = torch.where(small, torch.ones_like(phi), phi)
    s_l = torch.where(small, 1.0 - phi * phi / 6.0, sin / phi_safe) * length  # sin(phi)/k
    c_l = torch.where(small, 0.5 * phi, (1.0 - cos) / phi_safe) * length  # (1 - cos phi)/k
    x = x + u_par * nx * length + px_ * s_l - cx * c_l
    y = y + u_par * ny * length + py_ * s_l - cy * c_l
    z = z + pz_ * s_l - cz * c_l
    ux, uy, uz = u_par * nx + px_ * cos - cx * sin, u_par * ny + py_ * cos - cy * sin, pz_ * cos - cz * sin
    return x, y, z, ux, uy, uz, b


class FastTransport:
    """Transport chunks through one geometry with one set of step tables."""

    def __init__(self, geometry: ShieldGeometry, tables: StepTables, settings: FastSettings = FastSettings(),
                 device: torch.device | str = "cpu"):
        self.geometry, self.settings, self.device = geometry, settings, torch.device(device)
        lookup = GeometryLookup(geometry)
        self.geo = SegmentGeometry(lookup, self.device, settings.dtype)
        mats = [(get_material(n), s) for n, s in lookup.materials]
        kw = {"dtype": settings.dtype, "device": self.device}
        self.density = torch.tensor([m.density * s for m, s in mats], **kw)
        self.x0_cm = torch.tensor([m.radiation_length / (m.density * s) for m, s in mats], **kw)
        rows = [tables.material_index(n, s) for n, s in lookup.materials]
        self.sampler = TableSampler(tables, rows, self.density, self.device, settings.dtype)
        # Float32 positions near z = 30 m have a 0.2 um grain: step just past boundaries by more.
        self.eps = 2e-3 if settings.dtype == torch.float32 else 1e-6
        step = functools.partial(_advance_step, self)
        # torch.compile fuses the ~150 elementwise operations of a step into a few kernels.
        self._advance = torch.compile(step, dynamic=True) if settings.compile else step

    def propagate(self, pos: torch.Tensor, mom: torch.Tensor, charge: torch.Tensor, planes: str | Sequence[str],
                  generator: torch.Generator) -> PlaneHits:
        """Move (N, 3) positions [cm] and momenta [GeV/c] of charges [e] through the
        recording ``planes`` (one name or several), stopping after the last."""
        s, g, dt = self.settings, self.geometry, self.settings.dtype
        plane_objs = [g.plane(name) for name in ([planes] if isinstance(planes, str) else planes)]
        z_plane = max(pl.z for pl in plane_objs)
        n = pos.shape[0]
        dev = self.device
        hits = PlaneHits()
        for pl in plane_objs:
            hits.reached[pl.name] = torch.zeros(n, dtype=torch.bool, device=dev)
            hits.state[pl.name] = torch.full((n, 6), float("nan"), dtype=torch.float64, device=dev)
        pos, mom = pos.to(dev, dt), mom.to(dev, dt)
        p = torch.linalg.norm(mom, dim=1)
        x, y, z = pos.unbind(1)
        ux, uy, uz = (mom / p.clamp_min(1e-30)[:, None]).unbind(1)
        q = charge.to(dev, dt)
        t_x0, b_prev = torch.zeros_like(p), torch.zeros_like(p)
        idx = torch.arange(n, device=dev)
        mat_prev = self.geo.query(x, y, z)[0]
        live = (p >= s.min_momentum) & (uz > 0) & (z < z_plane)
        cols = [x, y, z, ux, uy, uz, p, q, t_x0, b_prev, idx, mat_prev]
        cols = [c[live] for c in cols]
        steps = 0
        while cols[0].numel():
            steps += 1
            z_old, idx = cols[2], cols[10]
            # Random numbers are drawn here, outside the (optionally compiled) step.
            r = torch.rand((7, z_old.shape[0]), generator=generator, device=dev, dtype=dt)
            x, y, z, ux, uy, uz, p, q, t_x0, b_now, mat = self._advance(*cols[:10], cols[11], r)
            for pl in plane_objs:
                cross = (z_old < pl.z) & (z >= pl.z) & (p >= s.min_momentum)
                if bool(cross.any()):
                    back = (z[cross] - pl.z) / uz[cross].clamp_min(1e-6)
                    pc = p[cross]
                    at = torch.stack([x[cross] - ux[cross] * back, y[cross] - uy[cross] * back,
                                      torch.full_like(pc, pl.z), ux[cross] * pc, uy[cross] * pc, uz[cross] * pc], 1)
                    at = at.to(torch.float64)
                    at[:, 2] = pl.z  # exactly on the plane, whatever the arithmetic precision
                    hits.state[pl.name][idx[cross]] = at
                    hits.reached[pl.name][idx[cross]] = True
            gone = ((p < s.min_momentum) | (uz <= 0) | (z >= z_plane) | (z > g.world.z_max) | (z < g.world.z_min)
                    | (x.abs() > g.world.half_x) | (y.abs() > g.world.half_y))
            cols = [x, y, z, ux, uy, uz, p, q, t_x0, b_now, idx, mat]
            if bool(gone.any()):
                keep = torch.nonzero(~gone).squeeze(1)
                cols = [c.index_select(0, keep) for c in cols]
        hits.steps = steps
        for pl in plane_objs:
            if pl.has_aperture:
                st = hits.state[pl.name]
                hits.in_aperture[pl.name] = (hits.reached[pl.name] & (st[:, 0].abs() <= pl.aperture_half_x)
                                             & (st[:, 1].abs() <= pl.aperture_half_y))
        return hits


def _advance_step(self: FastTransport, x, y, z, ux, uy, uz, p, q, t_x0, b_prev, mat_prev, r):
    """One step of every active muon (pure tensor arithmetic and gathers); ``r`` holds
    7 uniform numbers per muon.  Returns the new state and the step's material."""
    s, m2 = self.settings, MUON_MASS**2
    seg = self.geo.segment(z)
    rho_prev = self.density[mat_prev]
    energy = torch.sqrt(p * p + m2)
    dense = self.geo.dense_zone[seg] | (rho_prev > 0.05)
    length = torch.where(dense, s.dense_step, s.air_step)
    # Step control as the reference's (rough dE/dx), with looser bounds: the tables
    # already hold the reference's sub-steps.
    length = torch.minimum(length, s.loss_fraction * energy / (rho_prev * (2.5e-3 + 8e-6 * energy)))
    length = torch.minimum(length, s.max_bend * p / (C_LIGHT * b_prev).clamp_min(1e-12))
    to_edge = (self.geo.segment_end[seg] - z + self.eps) / uz.clamp_min(1e-6)
    length = torch.minimum(length, to_edge).clamp_min(self.eps)
    half = 0.5 * length
    z_mid = z + uz * half
    # The step ends just past the segment's end, so its midpoint is in the same segment
    # unless the muon started within eps of the boundary.
    seg = seg + (z_mid >= self.geo.segment_end[seg]).long()
    mat, bx, by, _ = self.geo.query(x + ux * half, y + uy * half, z_mid, seg)
    x, y, z, ux, uy, uz, b_now = helix(x, y, z, ux, uy, uz, p, q, bx, by, length)
    t_step = length / self.x0_cm[mat]
    sigma = highland_sigma(p, energy, t_x0, t_step)
    loss, (tx, ty), (dx, dy) = self.sampler.sample(mat, p, length, sigma, r)
    # A loss larger than the energy (possible: it is sampled for the step's start energy) stops the muon.
    e_new = (energy - loss).clamp_min(MUON_MASS)
    p = torch.sqrt((e_new * e_new - m2).clamp_min(0.0))
    x, y, z, ux, uy, uz = _kick(x, y, z, ux, uy, uz, tx, ty, dx, dy)
    return x, y, z, ux, uy, uz, p, q, t_x0 + t_step, b_now, mat


def _kick(x, y, z, ux, uy, uz, tx, ty, dx, dy):
    """Deflect directions by projected angles (tx, ty) [rad] and shift positions by
    (dx, dy) [cm] in the transverse frame e1 ~ y x u, e2 = u x e1 (the reference's)."""
    norm = torch.sqrt(uz * uz + ux * ux).clamp_min(1e-12)
    e1x, e1z = uz / norm, -ux / norm  # y_axis x u, normalised (e1y = 0)
    e2x, e2y, e2z = uy * e1z, uz * e1x - ux * e1z, -uy * e1x  # u x e1
    x = x + e1x * dx + e2x * dy
    y = y + e2y * dy
    z = z + e1z * dx + e2z * dy
    theta = torch.sqrt(tx * tx + ty * ty)
    cos = torch.cos(theta)
    sin_over = torch.where(theta > 1e-6, torch.sin(theta) / theta.clamp_min(1e-6), torch.ones_like(theta))
    ux = ux * cos + (e1x * tx + e2x * ty) * sin_over
    uy = uy * cos + e2y * ty * sin_over
    uz = uz * cos + (e1z * tx + e2z * ty) * sin_over
    inv = torch.rsqrt(ux * ux + uy * uy + uz * uz)
    return x, y, z, ux * inv, uy * inv, uz * inv
