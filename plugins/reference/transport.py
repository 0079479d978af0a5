"""The reference propagator: muons through a `ShieldGeometry`, vectorised over muons.

Each iteration advances every live muon by one step:

1. step length L = min(max step (dense zones / air), bending limit ``max_bend`` p/(c|B|),
   energy-loss limit ``max_loss_fraction`` E/(dE/dx), distance to the next z boundary
   of the geometry (so every step ends just past a magnet face or a recording plane));
2. material and field at the straight-line midpoint; exact helix in that field;
3. energy loss and scattering of the step (`StepPhysics.sample_step`);
4. recording at every plane crossed; stop when p < ``min_momentum``, the muon leaves
   the world box, turns backwards, or passes the last plane asked for.

Units: cm, GeV, tesla; positions in FairShip's frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from shipfastsim.geometry import GeometryLookup, ShieldGeometry, get_material
from shipfastsim.plugins.reference.cross_sections import MUON_MASS_GEV
from shipfastsim.plugins.reference.physics import StepPhysics
from shipfastsim.plugins.reference.stepper import C_LIGHT, helix_step, rotate_direction, transverse_basis

__all__ = ["TransportSettings", "TransportResult", "ReferenceTransport", "STOP_REASONS"]

#: stop_reason codes of `TransportResult`.
STOP_REASONS = {0: "passed_last_plane", 1: "stopped", 2: "left_world", 3: "backward", 4: "world_end"}


@dataclass(frozen=True)
class TransportSettings:
    """Cuts and step control (lengths in cm, energies in GeV, angles in rad)."""

    v_cut: float = 0.01
    delta_cut: float = 0.01
    min_momentum: float = 0.5
    max_step_dense: float = 10.0
    max_step_air: float = 50.0
    max_bend: float = 0.02
    max_loss_fraction: float = 0.05
    scattering_tail_factor: float = 2.5


@dataclass
class TransportResult:
    """Per muon: for each plane whether it was reached, the state there
    (x, y, z [cm], px, py, pz [GeV], NaN if not reached), whether it was inside the
    plane's aperture, and why transport ended (`STOP_REASONS`)."""

    reached: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # (N, 6)
    in_aperture: dict[str, torch.Tensor] = field(default_factory=dict)
    stop_reason: torch.Tensor | None = None
    steps: int = 0


class ReferenceTransport:
    """Transport muons through one geometry with one set of `TransportSettings`."""

    def __init__(self, geometry: ShieldGeometry, settings: TransportSettings = TransportSettings()):
        self.geometry, self.settings = geometry, settings
        self.lookup = GeometryLookup(geometry)
        mats = [(get_material(name), scale) for name, scale in self.lookup.materials]
        self.physics = StepPhysics(mats, settings.v_cut, settings.delta_cut, settings.scattering_tail_factor)
        self.density = torch.tensor([m.density * s for m, s in mats], dtype=torch.float64)
        self.boundaries = self.lookup.z_boundaries()
        g = geometry
        zones = [(g.target.z0, g.target.z_end), (g.shield_z_start, g.shield_z_end)]
        zones += [(b.z_start, b.z_end) for b in g.blocks]
        self.zones = torch.tensor(zones, dtype=torch.float64)

    def _in_zone(self, z: torch.Tensor) -> torch.Tensor:
        # Inside the z range of the target, a block or the magnets, air gaps between
        # iron pieces are short, so the dense-material step limit applies there too.
        return ((z[:, None] >= self.zones[:, 0]) & (z[:, None] < self.zones[:, 1])).any(1)

    def propagate(self, pos: torch.Tensor, mom: torch.Tensor, charge: torch.Tensor, generator: torch.Generator,
                  planes: list[str] | None = None) -> TransportResult:
        """Transport muons from (N, 3) positions [cm] with (N, 3) momenta [GeV] and
        charges [e] until they pass the last of ``planes`` (default: all planes)."""
        s, g = self.settings, self.geometry
        plane_objs = [g.plane(name) for name in (planes or [p.name for p in g.planes])]
        z_last = max(p.z for p in plane_objs)
        n = pos.shape[0]
        pos = pos.to(torch.float64).clone()
        p = torch.linalg.norm(mom, dim=1).to(torch.float64)
        u = mom.to(torch.float64) / p[:, None]
        q = charge.to(torch.float64)
        t_x0 = torch.zeros(n, dtype=torch.float64)
        result = TransportResult(stop_reason=torch.full((n,), -1, dtype=torch.int64))
        for plane in plane_objs:
            result.reached[plane.name] = torch.zeros(n, dtype=torch.bool)
            result.state[plane.name] = torch.full((n, 6), float("nan"), dtype=torch.float64)
        active = torch.nonzero(p >= s.min_momentum).squeeze(1)
        result.stop_reason[p < s.min_momentum] = 1
        while active.numel():
            result.steps += 1
            P, U, pa, qa = pos[active], u[active], p[active], q[active]
            E = torch.sqrt(pa**2 + MUON_MASS_GEV**2)
            mat0, bx, by, bz = self.lookup.query(P[:, 0], P[:, 1], P[:, 2])
            b0 = torch.sqrt(bx**2 + by**2 + bz**2)
            dense = (self.density[mat0] > 0.05) | self._in_zone(P[:, 2])
            L = torch.where(dense, s.max_step_dense, s.max_step_air)
            L = torch.minimum(L, s.max_bend * pa / (C_LIGHT * b0).clamp_min(1e-12))
            dedx = self.density[mat0] * (2.5e-3 + 8e-6 * E)  # rough GeV/cm, only for step control
            L = torch.minimum(L, s.max_loss_fraction * E / dedx.clamp_min(1e-12))
            # index of the first boundary beyond z (a comparison count: the geometry has few boundaries)
            nxt = (P[:, 2:3] + 1e-7 >= self.boundaries).sum(1).clamp_max(self.boundaries.numel() - 1)
            dz = (self.boundaries[nxt] - P[:, 2]).clamp_min(0.0)
            L = torch.minimum(L, dz / U[:, 2].clamp_min(1e-9) + 1e-6).clamp_min(1e-6)
            mid = P + U * (0.5 * L[:, None])
            mat, bx, by, bz = self.lookup.query(mid[:, 0], mid[:, 1], mid[:, 2])
            new_pos, new_u = helix_step(P, U, pa, qa, torch.stack([bx, by, bz], 1), L)
            step = self.physics.sample_step(mat, pa, L, generator, t_x0[active])
            t_x0[active] += self.physics.radiation_lengths(mat, L)
            e_new = E - step.delta_e
            # A muon whose sampled loss exceeds its energy stops (p = 0), never comes back.
            p_new = torch.where(e_new > MUON_MASS_GEV,
                                torch.sqrt((e_new**2 - MUON_MASS_GEV**2).clamp_min(0.0)), 0.0)
            e1, e2 = transverse_basis(new_u)
            new_pos = new_pos + e1 * step.dx[:, None] + e2 * step.dy[:, None]
            new_u = rotate_direction(new_u, step.theta_x, step.theta_y)
            for plane in plane_objs:
                crossed = (P[:, 2] < plane.z) & (new_pos[:, 2] >= plane.z) & (p_new >= s.min_momentum)
                if bool(crossed.any()):
                    back = (new_pos[crossed, 2] - plane.z) / new_u[crossed, 2].clamp_min(1e-9)
                    at = new_pos[crossed] - new_u[crossed] * back[:, None]
                    at[:, 2] = plane.z
                    idx = active[crossed]
                    result.reached[plane.name][idx] = True
                    result.state[plane.name][idx] = torch.cat([at, new_u[crossed] * p_new[crossed, None]], 1)
            pos[active], u[active], p[active] = new_pos, new_u, p_new
            reason = torch.full_like(mat, -1)
            reason = torch.where(new_pos[:, 2] > g.world.z_max, 4, reason)
            reason = torch.where(new_pos[:, 2] >= z_last, 0, reason)
            reason = torch.where(new_u[:, 2] <= 0, 3, reason)
            out = (new_pos[:, 0].abs() > g.world.half_x) | (new_pos[:, 1].abs() > g.world.half_y)
            reason = torch.where(out | (new_pos[:, 2] < g.world.z_min), 2, reason)
            reason = torch.where(p_new < s.min_momentum, 1, reason)
            done = reason >= 0
            result.stop_reason[active[done]] = reason[done]
            active = active[~done]
        for plane in plane_objs:
            if plane.has_aperture:
                st = result.state[plane.name]
                result.in_aperture[plane.name] = (result.reached[plane.name] & (st[:, 0].abs() <= plane.aperture_half_x)
                                                  & (st[:, 1].abs() <= plane.aperture_half_y))
        return result
