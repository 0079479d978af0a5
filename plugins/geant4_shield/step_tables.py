"""fast-shield's step tables from Geant4 steps (what the seed's GPU transport samples).

For each table material a Geant4 slab ``l_max`` thick (160 cm) is cut into layers at
the tables' step lengths (0.625, 1.25, ..., 160 cm), each layer a volume of its own.
``settings.samples`` muons of each momentum node enter it along z at the origin; the
sensitive detector of each layer takes the muon's state where it enters (on the
boundary), i.e. after each tabulated length, so one muon serves every step length of
its momentum.  Geant4's physics is `runtime`'s (10 cm cut by default, lateral
displacement on), secondaries killed.

As for the reference's tables (`shipfastsim.plugins.fast_shield.tables`), the losses
above ``v_catastrophic`` of the muon's energy are not tabulated: a stepping action
takes the discrete part of each step's loss (the muon's loss less its energy
deposited along the step, i.e. what went into the secondaries of the interaction that
ended the step) and, when it exceeds that fraction of the energy at the step's start,
adds it to the muon's catastrophic loss, which is subtracted from its loss at the
following depths; fast-shield draws those losses from the cross sections
(`fast_shield.catastrophic`).  (Counting a whole step's loss instead took the
continuous loss of long steps, tens of cm of iron in one Geant4 step, for a
catastrophic one: the tables then lost 1 % too little, and 30-60 GeV/c muons
survived the shield 2 % more often than in Geant4.)  Muons that stop before
a depth count as losing all their energy there and leave that depth's angle and
displacement tables.  Lengths in cm, momenta in GeV/c.
"""

from __future__ import annotations

import math

import numpy as np

from shipfastsim.geometry import get_material
from shipfastsim.plugins.fast_shield.tables import (
    LOSS_CLASS_EDGES,
    U_ANGLE,
    U_DISP,
    U_LOSS,
    StepTables,
    TableSettings,
    reduce_bin,
)
from shipfastsim.plugins.geant4_shield.detector import MM_PER_CM, NIST_NAMES, material_label, plane_detector
from shipfastsim.plugins.geant4_shield.runtime import Geant4Session

__all__ = ["build_geant4_tables", "sample_depths"]

_MEV_PER_GEV = 1000.0
_MUON_MASS_MEV = 105.6583755


def _slab_detector(g4, material: tuple[str, float], depths: np.ndarray, hit, half_width_cm: float = 1000.0):
    """Layers of ``material`` ending at ``depths`` [cm] along +z from z = 0, then vacuum;
    ``hit(k, step)`` is called for steps in layer k + 1 (k = len(depths) - 1: the vacuum)."""
    name, scale = material

    class Slab(g4.G4VUserDetectorConstruction):
        def __init__(self):
            super().__init__()
            self.keep: list = []
            self.layers: list = []
            self.z_centre_mm = 0.0

        def Construct(self):
            nist = g4.G4NistManager.Instance()
            label = "table:" + material_label(name, scale)
            matter = g4.G4Material.GetMaterial(label, False) or nist.BuildMaterialWithNewDensity(
                label, NIST_NAMES[name], get_material(name).density * scale * g4.g / g4.cm3)
            vacuum = nist.FindOrBuildMaterial("G4_Galactic")
            half = half_width_cm * MM_PER_CM
            length = float(depths[-1]) * MM_PER_CM
            world_solid = g4.G4Box("world", half, half, 2.0 * length + 100.0)
            world_logical = g4.G4LogicalVolume(world_solid, vacuum, "world")
            world = g4.G4PVPlacement(None, g4.G4ThreeVector(), world_logical, "world", None, False, 0, False)
            self.keep += [world_solid, world_logical, world]
            edges = [0.0, *[float(d) * MM_PER_CM for d in depths], 2.0 * length]
            for k, (z0, z1) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
                solid = g4.G4Box(f"layer{k}", half, half, 0.5 * (z1 - z0))
                logical = g4.G4LogicalVolume(solid, matter if k < len(depths) else vacuum, f"layer{k}")
                placed = g4.G4PVPlacement(None, g4.G4ThreeVector(0.0, 0.0, 0.5 * (z0 + z1)), logical, f"layer{k}",
                                          world_logical, False, 0, False)
                self.keep += [solid, logical, placed]
                self.layers.append(logical)
            return world

        def ConstructSDandField(self):
            manager = g4.G4SDManager.GetSDMpointer()
            for k, logical in enumerate(self.layers[1:]):
                detector = plane_detector(g4, f"table_layer{k}_{name}_{scale:g}", k, hit)
                manager.AddNewDetector(detector)
                logical.SetSensitiveDetector(detector)
                self.keep.append(detector)

    return Slab()


class _Recorder:
    """Per muon: the state at each depth and the catastrophic loss so far [MeV] (plain
    Python containers: one callback per muon and depth, numpy item writes cost more)."""

    def __init__(self, g4, n: int, n_depths: int, v_catastrophic: float | None):
        self.g4, self.v, self.n, self.n_depths = g4, v_catastrophic, n, n_depths
        #: (muon, depth) -> (kinetic energy [MeV], x, y [mm], px/pz, py/pz, catastrophic loss so far [MeV])
        self.records: dict[tuple[int, int], tuple[float, ...]] = {}
        self.catastrophic = [0.0] * n
        self.error: Exception | None = None

    def hit(self, k: int, step) -> None:
        # A muon's first step in a layer starts on the layer's boundary: take only that one.
        try:
            i = step.GetTrack().GetTrackID() - 1
            if (i, k) in self.records:
                return
            pre = step.GetPreStepPoint()
            momentum = pre.GetMomentum()
            if momentum.z <= 0.0:
                return
            position = pre.GetPosition()
            self.records[i, k] = (pre.GetKineticEnergy(), position.x, position.y, momentum.x / momentum.z,
                                  momentum.y / momentum.z, self.catastrophic[i])
        except Exception as error:  # an exception inside Geant4 leaves it stuck
            self.error = error

    def step(self, step) -> None:
        try:
            # The muon's loss in the step less what it deposited along the step (its continuous
            # loss) is what went into secondaries: the discrete interaction that ended the step.
            discrete = -step.GetDeltaEnergy() - step.GetTotalEnergyDeposit()
            if self.v is None or discrete <= 0.0:
                return
            if discrete > self.v * (step.GetPreStepPoint().GetKineticEnergy() + _MUON_MASS_MEV):
                self.catastrophic[step.GetTrack().GetTrackID() - 1] += discrete
        except Exception as error:
            self.error = error

    def arrays(self) -> np.ndarray:
        """(n, depths, 6) records, NaN where a muon did not reach a depth."""
        out = np.full((self.n, self.n_depths, 6), np.nan)
        if self.records:
            keys = np.array(list(self.records.keys()))
            out[keys[:, 0], keys[:, 1]] = np.array(list(self.records.values()))
        return out


class _TableActions:
    """Primaries (n muons of momentum p0 along z from just before the slab), a stepping
    action for the catastrophic losses, secondaries killed."""

    def __init__(self, g4):
        self.g4, self.n, self.p0 = g4, 0, 1.0
        self.recorder: _Recorder | None = None
        self.gun = g4.G4ParticleGun(1)
        owner = self

        class Primary(g4.G4VUserPrimaryGeneratorAction):
            def GeneratePrimaries(self, event):
                gun = owner.gun
                gun.SetParticleDefinition(g4.G4ParticleTable.GetParticleTable().FindParticle("mu+"))
                gun.SetParticlePosition(g4.G4ThreeVector(0.0, 0.0, -1.0))
                gun.SetParticleMomentumDirection(g4.G4ThreeVector(0.0, 0.0, 1.0))
                p = owner.p0 * _MEV_PER_GEV
                gun.SetParticleEnergy(p * p / (math.sqrt(p * p + _MUON_MASS_MEV**2) + _MUON_MASS_MEV))
                for _ in range(owner.n):
                    gun.GeneratePrimaryVertex(event)

        class Stepping(g4.G4UserSteppingAction):
            def UserSteppingAction(self, step):
                owner.recorder.step(step)

        class Stacking(g4.G4UserStackingAction):
            def ClassifyNewTrack(self, track):
                return g4.G4ClassificationOfNewTrack.fUrgent if track.GetParentID() == 0 else \
                    g4.G4ClassificationOfNewTrack.fKill

        self.primary, self.stepping, self.stacking = Primary(), Stepping(), Stacking()
        self.tracking = None  # no tracking action


def _table_actions(session) -> _TableActions:
    """The table actions of this process, installed (a process builds tables or transports, not both:
    Geant4 keeps a stepping action once set)."""
    if not isinstance(session.actions, _TableActions):
        if session.actions is not None:
            raise RuntimeError("this process already transports muons with Geant4; build tables in another process")
        actions = _TableActions(session.g4)
        session.set_actions(actions)
        session.run_manager.SetUserAction(actions.stepping)
    return session.actions


def sample_depths(material: tuple[str, float], p0: float, depths: np.ndarray, n: int, seed: int,
                  v_catastrophic: float | None, cut_cm: float = 10.0, min_momentum: float = 0.5):
    """Geant4 muons of momentum p0 [GeV/c] through layers of ``material``: per depth
    [cm], the loss dE [GeV] (all of E0 for stopped muons, catastrophic losses left out),
    projected angles (n, 2) [rad] and displacements (n, 2) [cm], and which muons still
    move there (momentum at least ``min_momentum``)."""
    session = Geant4Session.get()
    g4 = session.g4
    e0 = math.sqrt((p0 * _MEV_PER_GEV) ** 2 + _MUON_MASS_MEV**2)
    recorder = _Recorder(g4, n, len(depths), v_catastrophic)
    actions = _table_actions(session)
    actions.recorder = recorder
    session.use(("tables", material, tuple(float(d) for d in depths)),
                lambda: _slab_detector(g4, material, depths, lambda k, step: actions.recorder.hit(k, step)))
    session.set_cut(cut_cm)
    actions.n, actions.p0 = n, p0
    session.seed(seed)
    session.beam_on(1)
    if recorder.error is not None:
        raise RuntimeError(f"Geant4 table sampling failed: {recorder.error!r}") from recorder.error
    state = recorder.arrays()
    kinetic = state[:, :, 0]
    p = np.sqrt(np.maximum(kinetic * (kinetic + 2.0 * _MUON_MASS_MEV), 0.0)) / _MEV_PER_GEV
    moving = ~np.isnan(kinetic) & (p >= min_momentum)
    energy = (np.nan_to_num(kinetic) + _MUON_MASS_MEV + np.nan_to_num(state[:, :, 5])) / _MEV_PER_GEV
    loss = np.where(moving, e0 / _MEV_PER_GEV - energy, e0 / _MEV_PER_GEV)
    theta = np.nan_to_num(state[:, :, 3:5])
    disp = np.nan_to_num(state[:, :, 1:3]) / MM_PER_CM
    return loss, theta, disp, moving


def table_rows(settings: TableSettings, m: int, i: int, cut_cm: float
               ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """The tables of material m and momentum node i, every step length: (m, i, loss,
    angle, disp), from Geant4 muons seeded by (seed, m, i) whatever process runs them."""
    s = settings
    name, scale = s.materials[m]
    mat = get_material(name)
    p0 = float(s.p_nodes[i])
    de, th, d, moving = sample_depths((name, scale), p0, s.l_nodes, s.samples, s.seed * 1000 + m * 100 + i,
                                      s.v_catastrophic, cut_cm, s.min_momentum)
    rows = [reduce_bin(de[:, j], th[:, j], d[:, j], mat.density * scale, mat.radiation_length, p0, float(length),
                       moving[:, j]) for j, length in enumerate(s.l_nodes)]
    return m, i, *(np.stack([row[k] for row in rows]) for k in range(3))


def _worker_rows(job):
    return table_rows(*job)


def build_geant4_tables(settings: TableSettings, workers: int = 1, progress=None) -> StepTables:
    """Step tables of ``settings`` (``physics`` ``geant4``, cut ``geant4_cut``) from Geant4
    steps, one job per (material, momentum node) on ``workers`` processes (each with its
    own Geant4; the jobs' seeds do not depend on the process, so neither do the tables).
    ``progress(message)`` after each job."""
    import multiprocessing

    s = settings
    if s.physics != "geant4" or s.geant4_cut is None:
        raise ValueError("build_geant4_tables needs settings with physics='geant4' and geant4_cut set")
    shape = (len(s.materials), len(s.p_nodes), len(s.l_nodes))
    loss = np.zeros(shape + (len(U_LOSS),), np.float32)
    angle = np.zeros(shape + (len(LOSS_CLASS_EDGES) + 1, len(U_ANGLE)), np.float32)
    disp = np.zeros(shape + (len(U_DISP),), np.float32)
    # The densest materials first: their jobs are the longest.
    order = sorted(range(len(s.materials)), key=lambda m: -get_material(s.materials[m][0]).density)
    jobs = [(s, m, i, s.geant4_cut) for m in order for i in range(len(s.p_nodes))]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        for done, (m, i, lo, an, di) in enumerate(pool.imap_unordered(_worker_rows, jobs), 1):
            loss[m, i], angle[m, i], disp[m, i] = lo, an, di
            if progress is not None:
                progress(f"{s.materials[m][0]} p = {s.p_nodes[i]:.3g} GeV/c ({done}/{len(jobs)})")
    return StepTables(s, loss, angle, disp)
