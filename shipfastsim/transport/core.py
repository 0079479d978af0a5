"""`Transport`: the one stepping loop of every shield transport; only the step sampler differs.

Per step, for every live muon (one tensor element each, no loop over muons):

1. step length L [cm]: ``dense_step`` in dense matter or inside the z range of the
   target, a block or the magnets (longer inside a magnet, up to ``long_step``, as
   far as the lateral safety allows: `StepSettings`), ``air_step`` elsewhere;
   shortened so that a muon loses at most ``loss_fraction`` of E
   (`mechanics.rough_dedx`), bends by at most ``max_bend`` rad, and ends just past
   the next z boundary of the geometry (magnet faces, recording planes).  The
   material and field that control the step are those at its start
   (``control="start"``, one more lookup) or of the previous step's midpoint
   (``"previous"``);
2. material and field at the straight-line midpoint (`SegmentGeometry`; the
   segment of each muon is carried from step to step, `SegmentGeometry.follow`);
3. energy loss, scattering angles and lateral displacement from the sampler
   (`StepSampler.sample`: detailed physics or tables);
4. exact helix in the midpoint field (`mechanics.helix`) with the momentum at
   mid-step (E - loss/2), then the scattering kick (`mechanics.kick`);
5. record the muons crossing each plane (state straight back on the plane, aperture
   flag); stop muons below ``min_momentum``, outside the world box, moving backwards
   or past the last plane (`STOP_REASONS`).

Finished muons leave the active set.  The sampler's generator is the only
randomness.  The arithmetic avoids masks and ``torch.where`` (several times the
cost of a multiplication on the CPU) and gathers with ``index_select``.
Units: cm, GeV/c, tesla; FairShip's frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from shipfastsim.geometry import GeometryLookup, ShieldGeometry, get_material
from shipfastsim.geometry.segments import SegmentGeometry
from shipfastsim.transport.mechanics import helix, kick, rough_dedx
from shipfastsim.units import C_LIGHT, MUON_MASS

__all__ = ["LATERAL_MARGIN", "StepSettings", "TransportResult", "StepSampler", "Transport", "STOP_REASONS"]

#: cm added to the lateral reach of a long step (the scattering kick's displacement,
#: float32 rounding).
LATERAL_MARGIN = 1.0
#: ``TransportResult.stop_reason`` codes.
STOP_REASONS = {0: "passed_last_plane", 1: "stopped", 2: "left_world", 3: "backward", 4: "world_end",
                5: "step_limit"}


@dataclass(frozen=True)
class StepSettings:
    """Step control [cm, rad], stopping momentum [GeV/c], where the step is
    controlled from (``"start"`` or ``"previous"``) and the arithmetic precision.

    ``long_step`` (None: off) is the longest step inside a magnet's z range: there a
    muon steps as far as its straight path, widened by its bending sagitta, the taper
    of the magnet's edges and ``LATERAL_MARGIN``, cannot reach a lateral edge of the
    magnet's cross-section or leave its outer envelope (the safeties of
    `SegmentGeometry.query` at the previous midpoint, `Transport._safe_reach`), up to
    ``long_step``: inside that reach material and field are uniform, and a longer step
    is as exact.  Never shorter than ``dense_step`` for it: near the edges the step
    stays ``dense_step``."""

    dense_step: float = 10.0
    air_step: float = 50.0
    loss_fraction: float = 0.05
    max_bend: float = 0.02
    min_momentum: float = 0.5
    control: str = "start"
    dtype: torch.dtype = torch.float64
    long_step: float | None = None


@dataclass
class TransportResult:
    """Per recording plane and input muon: whether it reached the plane, its state
    there (x, y, z, px, py, pz) [cm, GeV/c] (NaN if not), whether it was inside the
    plane's aperture (planes with one); why each muon's transport ended
    (`STOP_REASONS`), the number of steps the chunk took and (compiled kernel) the
    steps each muon took."""

    reached: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    in_aperture: dict[str, torch.Tensor] = field(default_factory=dict)
    stop_reason: torch.Tensor | None = None
    steps: int = 0
    steps_per_muon: torch.Tensor | None = None


class StepSampler(Protocol):
    """What a transport draws per step: energy loss [GeV], projected angles (tx, ty)
    [rad] and lateral displacements (dx, dy) [cm] in the frame of `mechanics.kick`."""

    def sample(self, material: torch.Tensor, p: torch.Tensor, energy: torch.Tensor, length: torch.Tensor,
               t_step: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...


class Transport:
    """Transport chunks of muons through one geometry with one sampler (see module docstring)."""

    def __init__(self, geometry: ShieldGeometry, sampler: StepSampler, settings: StepSettings = StepSettings(),
                 device: torch.device | str = "cpu"):
        self.geometry, self.sampler, self.settings = geometry, sampler, settings
        self.device = torch.device(device)
        self.lookup = GeometryLookup(geometry)
        self.geo = SegmentGeometry(self.lookup, self.device, settings.dtype)
        mats = [(get_material(n), s) for n, s in self.lookup.materials]
        kw = {"dtype": settings.dtype, "device": self.device}
        self.density = torch.tensor([m.density * s for m, s in mats], **kw)
        self.x0_cm = torch.tensor([m.radiation_length / (m.density * s) for m, s in mats], **kw)
        # Float32 positions near z = 30 m have a 0.2 um grain: step just past boundaries by more.
        self.eps = 2e-3 if settings.dtype == torch.float32 else 1e-6
        self.has_bz = self.geo.field_map is not None
        # 1 where the dense-matter step applies: per segment (the z ranges of the target,
        # blocks and magnets, air gaps included) and per material (dense matter anywhere).
        self.dense_segment = self.geo.dense_zone.to(**kw)
        self.dense_material = (self.density > 0.05).to(**kw)

    def propagate(self, pos: torch.Tensor, mom: torch.Tensor, charge: torch.Tensor, planes: str | Sequence[str],
                  generator: torch.Generator) -> TransportResult:
        """Move (N, 3) positions [cm] and momenta [GeV/c] of charges [e] through the
        recording ``planes`` (one name or several), stopping after the last."""
        s, g, dt, dev = self.settings, self.geometry, self.settings.dtype, self.device
        plane_objs = [g.plane(name) for name in ([planes] if isinstance(planes, str) else planes)]
        z_last = max(pl.z for pl in plane_objs)
        n = pos.shape[0]
        result = TransportResult(stop_reason=torch.full((n,), -1, dtype=torch.int64, device=dev))
        for pl in plane_objs:
            result.reached[pl.name] = torch.zeros(n, dtype=torch.bool, device=dev)
            result.state[pl.name] = torch.full((n, 6), float("nan"), dtype=torch.float64, device=dev)
        pos, mom = pos.to(dev, dt), mom.to(dev, dt)
        p = torch.linalg.norm(mom, dim=1)
        x, y, z = pos.unbind(1)
        ux, uy, uz = (mom / p.clamp_min(1e-30)[:, None]).unbind(1)
        q = charge.to(dev, dt)
        seg = self.geo.segment(z)
        mat, bx, by, bz = self.geo.query(x, y, z, seg)
        b = torch.sqrt(bx * bx + by * by + bz * bz)
        idx = torch.arange(n, device=dev)
        result.stop_reason[p < s.min_momentum] = 1
        live = (p >= s.min_momentum) & (uz > 0) & (z < z_last)
        far = torch.zeros_like(p)  # [cm]: how long the next step may be inside a magnet
        cols = [c[live] for c in (x, y, z, ux, uy, uz, p, q, b, mat, seg, far, idx)]
        w = g.world
        while cols[0].numel():
            result.steps += 1
            z_old = cols[2]
            x, y, z, ux, uy, uz, p, q, b, mat, seg, far = self._step(*cols[:12], generator)
            idx = cols[12]
            z_front = float(z.max())
            for pl in plane_objs:
                if z_front < pl.z:  # no muon has reached the plane yet
                    continue
                cross = (z_old < pl.z) & (z >= pl.z) & (p >= s.min_momentum)
                if bool(cross.any()):
                    back = (z[cross] - pl.z) / uz[cross].clamp_min(1e-6)
                    pc = p[cross]
                    at = torch.stack([x[cross] - ux[cross] * back, y[cross] - uy[cross] * back,
                                      torch.full_like(pc, pl.z), ux[cross] * pc, uy[cross] * pc, uz[cross] * pc], 1)
                    at = at.to(torch.float64)
                    at[:, 2] = pl.z  # exactly on the plane, whatever the arithmetic precision
                    result.state[pl.name][idx[cross]] = at
                    result.reached[pl.name][idx[cross]] = True
            cols = [x, y, z, ux, uy, uz, p, q, b, mat, seg, far, idx]
            gone = ((p < s.min_momentum) | (uz <= 0) | (z >= z_last) | (z > w.z_max) | (z < w.z_min)
                    | (x.abs() > w.half_x) | (y.abs() > w.half_y))
            if bool(gone.any()):
                # Reasons only for the muons that stop (few per step), by priority.
                out = torch.nonzero(gone).squeeze(1)
                xo, yo, zo, uzo, po = (c.index_select(0, out) for c in (x, y, z, uz, p))
                reason = torch.full_like(out, -1)
                reason = torch.where(zo > w.z_max, 4, reason)
                reason = torch.where(zo >= z_last, 0, reason)
                reason = torch.where(uzo <= 0, 3, reason)
                outside = (xo.abs() > w.half_x) | (yo.abs() > w.half_y) | (zo < w.z_min)
                reason = torch.where(outside, 2, reason)
                reason = torch.where(po < s.min_momentum, 1, reason)
                result.stop_reason[idx.index_select(0, out)] = reason
                keep = torch.nonzero(~gone).squeeze(1)
                cols = [c.index_select(0, keep) for c in cols]
        for pl in plane_objs:
            if pl.has_aperture:
                st = result.state[pl.name]
                result.in_aperture[pl.name] = (result.reached[pl.name] & (st[:, 0].abs() <= pl.aperture_half_x)
                                               & (st[:, 1].abs() <= pl.aperture_half_y))
        return result

    def _step(self, x, y, z, ux, uy, uz, p, q, b_prev, mat_prev, seg, far, generator):
        """One step of every active muon; returns the new state, |B|, material, segment
        and the length [cm] the next step may take inside a magnet (``far``)."""
        s, geo = self.settings, self.geo
        if s.control == "start":
            mat_prev, bx, by, bz = geo.query(x, y, z, seg)
            b_prev = torch.sqrt(bx * bx + by * by + bz * bz)
        rho = self.density.index_select(0, mat_prev)
        energy = torch.sqrt(p * p + MUON_MASS**2)
        dense = torch.maximum(self.dense_segment.index_select(0, seg), self.dense_material.index_select(0, mat_prev))
        dense_step = s.dense_step if s.long_step is None else torch.clamp_min(far, s.dense_step)
        length = s.air_step + (dense_step - s.air_step) * dense
        length = torch.minimum(length, s.loss_fraction * energy / (rho * rough_dedx(energy)))
        length = torch.minimum(length, s.max_bend * p / (C_LIGHT * b_prev).clamp_min(1e-12))
        end = geo.segment_end.index_select(0, seg)
        to_edge = (end - z + self.eps) / uz.clamp_min(1e-6)
        length = torch.minimum(length, to_edge).clamp_min(self.eps)
        half = 0.5 * length
        z_mid = z + uz * half
        # The step ends just past its segment's end, so its midpoint is in the same
        # segment unless the muon started within eps of the boundary.
        seg = seg + torch.ge(z_mid, end).to(seg.dtype)
        x_mid, y_mid = x + ux * half, y + uy * half
        if s.long_step is None:
            mat, bx, by, bz = geo.query(x_mid, y_mid, z_mid, seg)
        else:
            mat, bx, by, bz, sx, sy = geo.query(x_mid, y_mid, z_mid, seg, with_safety=True)
        t_step = length / self.x0_cm.index_select(0, mat)
        loss, tx, ty, dx, dy = self.sampler.sample(mat, p, energy, length, t_step, generator)
        # Bend with the momentum at mid-step (the loss is drawn first): the bending of a
        # step is then exact to second order in the step's fractional loss.
        e_mid = energy - 0.5 * loss
        p_mid = torch.sqrt((e_mid * e_mid - MUON_MASS**2).clamp_min(1e-6))
        x, y, z, ux, uy, uz, b = helix(x, y, z, ux, uy, uz, p_mid, q, bx, by, bz if self.has_bz else None, length)
        # A loss larger than the energy (possible: it is drawn for the step's start energy) stops the muon.
        e_new = energy - loss
        p = torch.sqrt((e_new * e_new - MUON_MASS**2).clamp_min(0.0)) * torch.gt(e_new, MUON_MASS).to(p.dtype)
        x, y, z, ux, uy, uz = kick(x, y, z, ux, uy, uz, tx, ty, dx, dy)
        if s.long_step is not None:
            far = self._safe_reach(x - x_mid, y - y_mid, ux, uy, half, p, b, sx, sy, seg)
        return x, y, z, ux, uy, uz, p, q, b, mat, geo.follow(seg, z), far

    def _safe_reach(self, shift_x, shift_y, ux, uy, half, p, b, sx, sy, seg):
        """Longest next step [cm] (up to ``long_step``) from the end of this one whose
        straight part and bending sagitta stay inside the lateral safeties (sx, sy) of
        this step's midpoint, less how far the muon has moved sideways since that point
        (``shift``: bending and the scattering kick included), the edges' taper over the
        half step and `LATERAL_MARGIN`: R solves a R^2 + slope R = room with
        a = C |B| / (2 p) and slope = |u| + taper (the edges of a tapered magnet move
        with z)."""
        curv = (0.5 * C_LIGHT) * b / p.clamp_min(1e-3)
        reach = None
        for safety, shift, u, taper in ((sx, shift_x, ux, self.geo.taper_x.index_select(0, seg)),
                                        (sy, shift_y, uy, self.geo.taper_y.index_select(0, seg))):
            room = (safety - LATERAL_MARGIN - shift.abs() - taper * half).clamp_min(0.0)
            slope = u.abs() + taper
            # The root 2 room / (slope + sqrt(slope^2 + 4 a room)) has no cancellation.
            r = 2.0 * room / (slope + torch.sqrt(slope * slope + 4.0 * curv * room)).clamp_min(1e-12)
            reach = r if reach is None else torch.minimum(reach, r)
        return reach.clamp_max(self.settings.long_step)
