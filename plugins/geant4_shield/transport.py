"""`Geant4Transport`: muons through the shield with Geant4, recorded like the other transports.

A chunk of N muons is one Geant4 event with N primary vertices (track i + 1 is muon
i).  Secondaries are killed as they are created (stacking action).  A Python
stepping action looks only at the end of each step: when it lies past the next
recording plane the state is taken straight back onto the plane along the final
direction (as `shipfastsim.transport.Transport` does), and the muon is killed below
``min_momentum``, when moving backwards or past the last plane; a tracking action
reads where the others ended (world boundary).  The result is the same
`TransportResult` as the project's own transports return, with their stop reasons.

Reproducible by seed: the chunk's seed seeds Geant4's engine before the event, and
the tracking order of one event is fixed, so the same chunk gives the same muons in
any process.  Units: cm, GeV/c at the interface; Geant4's mm and MeV inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from shipfastsim.geometry import ShieldGeometry
from shipfastsim.plugins.geant4_shield.detector import MM_PER_CM, build_detector
from shipfastsim.plugins.geant4_shield.runtime import GEANT4_MUON_STEP_RATIO, Geant4Session
from shipfastsim.transport.core import STOP_REASONS, TransportResult

__all__ = ["DEFAULT_CUT_CM", "Geant4Transport", "STOP_REASONS"]

#: Production cut [cm]: see the README's cut comparison (the shield-end figures agree
#: with 1 cm; 10 cm is several times faster).
DEFAULT_CUT_CM = 10.0
_MEV_PER_GEV = 1000.0
_STOPPED, _LEFT_WORLD, _BACKWARD, _WORLD_END, _PASSED = 1, 2, 3, 4, 0


class _Actions:
    """The user actions of one chunk: primaries in, states at the planes out."""

    def __init__(self, g4):
        self.g4 = g4
        self.transport: Geant4Transport | None = None
        self.gun = g4.G4ParticleGun(1)
        self.error: Exception | None = None
        owner = self

        class Primary(g4.G4VUserPrimaryGeneratorAction):
            def GeneratePrimaries(self, event):
                try:
                    owner.generate(event)
                except Exception as error:  # an exception inside Geant4 leaves it stuck: keep it for later
                    owner.error = error

        class Stacking(g4.G4UserStackingAction):
            def ClassifyNewTrack(self, track):
                return g4.G4ClassificationOfNewTrack.fUrgent if track.GetParentID() == 0 else \
                    g4.G4ClassificationOfNewTrack.fKill

        class Tracking(g4.G4UserTrackingAction):
            def PostUserTrackingAction(self, track):
                try:
                    owner.end_track(track)
                except Exception as error:
                    owner.error = error

        self.primary, self.stacking, self.tracking = Primary(), Stacking(), Tracking()

    def start(self, transport: Geant4Transport, pos, mom, charge, n_planes: int):
        self.transport = transport
        n = pos.shape[0]
        self.pos, self.mom, self.charge = pos.tolist(), mom.tolist(), charge.tolist()
        self.states: list[list[list[float] | None]] = [[None] * n_planes for _ in range(n)]
        self.reason = [-1] * n
        self.last_plane = n_planes - 1
        self.error = None

    def generate(self, event):
        # The gun allocates the vertices in C++: the event owns and frees them.
        g4, zc, gun = self.g4, self.transport.z_centre_mm, self.gun
        table = g4.G4ParticleTable.GetParticleTable()
        muons = {1.0: table.FindParticle("mu+"), -1.0: table.FindParticle("mu-")}
        mass = muons[1.0].GetPDGMass()
        for (x, y, z), (px, py, pz), q in zip(self.pos, self.mom, self.charge, strict=True):
            p = math.sqrt(px * px + py * py + pz * pz)
            gun.SetParticleDefinition(muons[q])
            gun.SetParticlePosition(g4.G4ThreeVector(x * MM_PER_CM, y * MM_PER_CM, z * MM_PER_CM - zc))
            gun.SetParticleMomentumDirection(g4.G4ThreeVector(px / p, py / p, pz / p))
            # Kinetic energy [MeV] without the cancellation of sqrt(p^2 + m^2) - m.
            p_mev = p * _MEV_PER_GEV
            gun.SetParticleEnergy(p_mev * p_mev / (math.sqrt(p_mev * p_mev + mass * mass) + mass))
            gun.GeneratePrimaryVertex(event)

    def plane_hit(self, k: int, step) -> None:
        """A step in the slab of plane k: record the muon's state where it entered (on the plane)."""
        try:
            pre = step.GetPreStepPoint()
            track = step.GetTrack()
            i = track.GetTrackID() - 1
            if self.states[i][k] is not None or pre.GetStepStatus() != self.g4.G4StepStatus.fGeomBoundary:
                return
            momentum = pre.GetMomentum()
            if momentum.z <= 0.0:
                return
            if momentum.mag() < self.transport.min_momentum * _MEV_PER_GEV:
                self.reason[i] = _STOPPED
            else:
                position = pre.GetPosition()
                self.states[i][k] = [position.x / MM_PER_CM, position.y / MM_PER_CM, momentum.x / _MEV_PER_GEV,
                                     momentum.y / _MEV_PER_GEV, momentum.z / _MEV_PER_GEV]
                if k < self.last_plane:
                    return
                self.reason[i] = _PASSED
            track.SetTrackStatus(self.g4.G4TrackStatus.fStopAndKill)
        except Exception as error:
            self.error = error

    def end_track(self, track):
        """Why a muon that did not pass the last plane ended (world boundary, or it stopped)."""
        i = track.GetTrackID() - 1
        if self.reason[i] >= 0:
            return
        t = self.transport
        position, momentum = track.GetPosition(), track.GetMomentum()
        x, y = position.x / MM_PER_CM, position.y / MM_PER_CM
        z = (position.z + t.z_centre_mm) / MM_PER_CM
        w = t.geometry.world
        if momentum.mag() < t.min_momentum * _MEV_PER_GEV:
            self.reason[i] = _STOPPED
        elif z >= w.z_max - 1e-6:
            self.reason[i] = _WORLD_END
        elif abs(x) >= w.half_x - 1e-6 or abs(y) >= w.half_y - 1e-6 or z <= w.z_min + 1e-6:
            self.reason[i] = _LEFT_WORLD
        else:
            self.reason[i] = _BACKWARD if momentum.z <= 0 else _STOPPED


class Geant4Transport:
    """Transport chunks of muons through ``geometry`` with Geant4 (see module docstring).

    Args:
        geometry: the shield geometry (built once per process and geometry).
        cut_cm: production cut [cm].
        min_momentum: muons below it stop [GeV/c].
        check_overlaps: run Geant4's overlap check on every placement when building.
        lateral_displacement: multiple scattering's lateral displacement for muons
            (`Geant4Session.set_lateral_displacement`; one setting per process).
        muon_step_ratio: dRoverRange of the muons' energy-loss step limit
            (`Geant4Session.set_muon_step_ratio`; one setting per process).
    """

    def __init__(self, geometry: ShieldGeometry, cut_cm: float = DEFAULT_CUT_CM, min_momentum: float = 0.5,
                 check_overlaps: bool = False, lateral_displacement: bool = True,
                 muon_step_ratio: float = GEANT4_MUON_STEP_RATIO):
        self.geometry, self.cut_cm, self.min_momentum = geometry, float(cut_cm), float(min_momentum)
        self.check_overlaps = check_overlaps
        self.session = Geant4Session.get()
        self.session.set_lateral_displacement(lateral_displacement)
        self.session.set_muon_step_ratio(muon_step_ratio)
        if self.session.actions is None:
            self.session.set_actions(_Actions(self.session.g4))
        elif not isinstance(self.session.actions, _Actions):  # Geant4 keeps a stepping action once set
            raise RuntimeError("this process built step tables with Geant4; transport muons in another process")
        self.actions: _Actions = self.session.actions
        self.key = (geometry.source, repr(geometry), bool(check_overlaps))
        self._use_geometry()
        self.z_centre_mm = self.session.detector.z_centre_mm

    def _use_geometry(self) -> None:
        self.session.use(self.key, lambda: build_detector(self.geometry, self.check_overlaps, self.actions.plane_hit))

    def propagate(self, pos: torch.Tensor, mom: torch.Tensor, charge: torch.Tensor, planes: str | Sequence[str],
                  seed: int) -> TransportResult:
        """Move (N, 3) positions [cm] and momenta [GeV/c] of charges [e] through the
        recording ``planes`` (one name or several), stopping after the last; ``seed``
        (0 <= seed < 2^62) seeds Geant4's engine for this chunk."""
        g = self.geometry
        names = [planes] if isinstance(planes, str) else list(planes)
        wanted = [g.plane(name) for name in names]
        all_planes = list(g.planes)
        last = max(all_planes.index(plane) for plane in wanted)
        n = pos.shape[0]
        pos64, mom64 = pos.detach().to("cpu", torch.float64), mom.detach().to("cpu", torch.float64)
        q = charge.detach().to("cpu", torch.float64)
        p = torch.linalg.norm(mom64, dim=1)
        live = (p >= self.min_momentum) & (mom64[:, 2] > 0) & (pos64[:, 2] < all_planes[last].z)
        index = torch.nonzero(live).squeeze(1)
        self._use_geometry()
        self.session.set_cut(self.cut_cm)
        actions = self.actions
        actions.start(self, pos64[index], mom64[index], q[index], len(all_planes))
        actions.last_plane = last
        if index.numel():
            self.session.seed(seed)
            self.session.beam_on(1)
        if actions.error is not None:
            raise RuntimeError(f"geant4-shield: a user action failed: {actions.error!r}") from actions.error
        result = TransportResult(stop_reason=torch.full((n,), -1, dtype=torch.int64))
        result.stop_reason[p < self.min_momentum] = _STOPPED
        result.stop_reason[index] = torch.tensor(actions.reason, dtype=torch.int64)
        for plane in wanted:
            k = all_planes.index(plane)
            state = torch.full((n, 6), math.nan, dtype=torch.float64)
            rows = [(j, s[k]) for j, s in enumerate(actions.states) if s[k] is not None]
            if rows:
                at = torch.tensor([r for _, r in rows], dtype=torch.float64)
                where = index[torch.tensor([j for j, _ in rows])]
                state[where] = torch.stack([at[:, 0], at[:, 1], torch.full_like(at[:, 0], plane.z), at[:, 2],
                                            at[:, 3], at[:, 4]], 1)
            result.state[plane.name] = state
            result.reached[plane.name] = ~torch.isnan(state[:, 0])
            if plane.has_aperture:
                result.in_aperture[plane.name] = (result.reached[plane.name]
                                                  & (state[:, 0].abs() <= plane.aperture_half_x)
                                                  & (state[:, 1].abs() <= plane.aperture_half_y))
        return result
