"""Geant4 in this process: the offline import, the muon physics list, one run manager.

``geant4-pybind`` (Geant4 11.4, statically linked) looks for its datasets on import
and, when they are missing, asks on stdin or (with ``CI=true``) downloads them.
Muon transport needs none of them, only two empty stand-ins (``ENSDFSTATE.dat`` and
the ``PhotonEvaporation`` directory, read while particles and the EM standard
constructor are set up); `import_geant4` creates them in a cache directory and sets
``GEANT4_DATA_DIR`` (unless the user set it) before the import, so nothing is ever
downloaded, with or without ``CI=true``.

Geant4 allows one ``G4RunManager`` per process; `Geant4Session` owns it, builds the
physics list once (`MuonPhysics`: ``G4EmStandardPhysics`` for muons only, i.e.
ionisation, bremsstrahlung, pair production, multiple scattering (WentzelVI) and
single Coulomb scattering, plus muon-nuclear interactions from ``G4EmExtraPhysics``;
every process of every other particle and the muon's decay removed) and swaps the
detector when a different geometry is asked for.  Production cuts [cm] are set with
``/run/setCut`` (the physics-list setter has no effect from Python).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

__all__ = ["INSTALL_HINT", "DATA_STUBS", "GEANT4_MUON_STEP_RATIO", "import_geant4", "geant4_version"]

INSTALL_HINT = ("geant4-shield needs Geant4's Python bindings: pip install geant4-pybind "
                "(or pip install 'shipfastsim[geant4]')")
#: The dataset stand-ins muon-only physics needs (relative paths: files end in .dat).  The
#: empty G4EMLOW directory only silences a warning: nothing of muon physics reads it.
DATA_STUBS = ("G4ENSDFSTATE3.0/ENSDFSTATE.dat", "PhotonEvaporation6.1.2", "G4EMLOW8.6.1")

_module: ModuleType | None = None


#: Geant4's default dRoverRange of the muon energy-loss step function (G4EmParameters;
#: also that of G4EmStandardPhysics_option4, FairShip's EMZ).
GEANT4_MUON_STEP_RATIO = 0.2


def _stub_directory() -> Path:
    """A per-user directory holding the empty dataset stand-ins."""
    root = Path(os.environ.get("SHIPFASTSIM_CACHE", Path(tempfile.gettempdir()) / f"shipfastsim-{os.getuid()}"))
    root = root / "geant4-data"
    for stub in DATA_STUBS:
        path = root / stub
        if stub.endswith(".dat"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        else:
            path.mkdir(parents=True, exist_ok=True)
    return root


def import_geant4() -> ModuleType:
    """Import ``geant4_pybind`` without any dataset download (see module docstring);
    a missing package raises ImportError with the install hint."""
    global _module
    if _module is not None:
        return _module
    stubs = _stub_directory()
    # GEANT4_DATA_DIR set (to anything) makes the bindings skip their dataset check and download.
    os.environ.setdefault("GEANT4_DATA_DIR", str(stubs))
    os.environ.setdefault("G4ENSDFSTATEDATA", str(stubs / DATA_STUBS[0].split("/")[0]))
    os.environ.setdefault("G4LEVELGAMMADATA", str(stubs / DATA_STUBS[1]))
    os.environ.setdefault("G4LEDATA", str(stubs / DATA_STUBS[2]))
    try:
        import geant4_pybind
    except ModuleNotFoundError as error:
        if error.name != "geant4_pybind":
            raise
        raise ImportError(INSTALL_HINT) from None
    _module = geant4_pybind
    return geant4_pybind


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send what Geant4 prints to standard output (its banner, the physics tables, the
    run summaries) to /dev/null; its warnings and errors go to standard error as usual."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def geant4_version() -> str:
    """Geant4's version string, e.g. ``geant4-11-04-patch-01``."""
    version = str(import_geant4().G4Version)  # "$Name: geant4-11-04-patch-01 [MT]$"
    return version.removeprefix("$Name: ").removesuffix("$").strip()


#: Particles that keep their processes; every other particle is only transported (and killed on creation).
KEPT_PARTICLES = ("mu-", "mu+")
#: Muon processes removed from the physics list: the other transports have no decay.
REMOVED_MUON_PROCESSES = ("Decay",)


def muon_physics_list(g4: ModuleType):
    """A modular physics list with Geant4's standard EM and muon-nuclear physics, for muons only."""

    class MuonPhysics(g4.G4VModularPhysicsList):
        def __init__(self):
            super().__init__()
            self.SetVerboseLevel(0)
            self.RegisterPhysics(g4.G4EmStandardPhysics())
            self.RegisterPhysics(g4.G4EmExtraPhysics())
            # Without the decay constructor the string fragmentation of muon-nuclear
            # interactions crashes (SIGSEGV); the muon's own decay is removed below.
            self.RegisterPhysics(g4.G4DecayPhysics())

        def ConstructProcess(self):
            super().ConstructProcess()
            table = g4.G4ParticleTable.GetParticleTable()
            for i in range(table.entries()):
                particle = table.GetParticle(i)
                manager = particle.GetProcessManager()
                if manager is None:
                    continue
                keep_all = particle.GetParticleName() in KEPT_PARTICLES
                processes = manager.GetProcessList()
                for k in reversed(range(len(processes))):
                    process = processes[k]
                    name = process.GetProcessName()
                    if name == "Transportation":
                        continue
                    if not keep_all or name in REMOVED_MUON_PROCESSES:
                        manager.RemoveProcess(process)

    return MuonPhysics()


class Geant4Session:
    """The process's one Geant4 run manager, its physics list and current detector.

    ``use(detector_key, build)`` makes the detector built by ``build()`` (a
    ``G4VUserDetectorConstruction``) current, re-initialising the geometry only when
    the key changes; ``set_cut(cm)`` sets the production cut; ``beam_on`` runs events.
    """

    _instance: Geant4Session | None = None

    def __init__(self):
        g4 = import_geant4()
        self.g4 = g4
        ui = g4.G4UImanager.GetUIpointer()
        self.ui = ui
        for command in ("/control/verbose 0", "/run/verbose 0", "/event/verbose 0", "/tracking/verbose 0",
                        "/process/verbose 0", "/process/em/verbose 0", "/process/had/verbose 0"):
            ui.ApplyCommand(command)
        with quiet_stdout():
            self.run_manager = g4.G4RunManagerFactory.CreateRunManager(g4.G4RunManagerType.SerialOnly)
            self.physics = muon_physics_list(g4)
        # Geant4 wants the physics list in the run manager before any user action exists.
        self.run_manager.SetUserInitialization(self.physics)
        ui.ApplyCommand("/physics_lists/em/GammaNuclear false")
        ui.ApplyCommand("/physics_lists/em/ElectroNuclear false")
        self.detector_key = None
        self.detector = None
        self.retired: list = []
        self.actions = None
        self.cut_cm: float | None = None
        self.lateral_displacement = True
        self.g4.G4EmParameters.Instance().SetMuHadLateralDisplacement(True)
        self.muon_step_ratio = GEANT4_MUON_STEP_RATIO
        self.initialised = False

    @classmethod
    def get(cls) -> Geant4Session:
        """The session of this process (created on first use)."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def use(self, key, build) -> None:
        """Make the detector identified by ``key`` current (built by ``build()`` when new)."""
        if key == self.detector_key:
            return
        self.detector = build()
        # Geant4 keeps using replaced detectors' volumes until it re-initialises; Python
        # must not free them.
        self.retired.append(self.detector)
        self.run_manager.SetUserInitialization(self.detector)
        if self.initialised:  # build the new geometry now (else only at the next BeamOn)
            self.ui.ApplyCommand("/run/reinitializeGeometry")
            with quiet_stdout():
                self.run_manager.Initialize()
        self.detector_key = key

    def set_actions(self, actions) -> None:
        """Install the user actions (an object with ``primary``, ``stacking`` and ``tracking``,
        which may be None)."""
        if self.actions is actions:
            return
        for action in (actions.primary, actions.stacking, actions.tracking):
            if action is not None:
                self.run_manager.SetUserAction(action)
        self.actions = actions

    def set_cut(self, cut_cm: float) -> None:
        """Production cut for secondaries [cm] (they are killed, but the cut sets which
        energy transfers are sampled as discrete losses rather than continuous)."""
        if cut_cm != self.cut_cm:
            self.ui.ApplyCommand(f"/run/setCut {cut_cm} cm")
            self.cut_cm = cut_cm

    def set_lateral_displacement(self, enabled: bool) -> None:
        """Multiple scattering's lateral displacement within a step for muons.  Geant4's
        standard EM constructor leaves it off for muons and hadrons (fine in thin
        layers); in metres of iron, where Geant4's steps are long, the muons' lateral
        spread then comes only from their angles between steps and is too narrow.  A
        physics setting: fixed once Geant4 is initialised in this process."""
        if self.initialised:
            if enabled != self.lateral_displacement:
                raise ValueError("geant4-shield: msc_lateral_displacement cannot change once Geant4 is initialised "
                                 f"in a process (it is {self.lateral_displacement}); run the other setting in "
                                 "another process")
            return
        self.g4.G4EmParameters.Instance().SetMuHadLateralDisplacement(bool(enabled))
        self.lateral_displacement = bool(enabled)

    def set_muon_step_ratio(self, ratio: float) -> None:
        """dRoverRange of the muons' energy-loss step limit (``SetStepFunctionMuHad``;
        final range 0.1 mm, Geant4's): a step may use up at most this fraction of the
        muon's remaining range.  Geant4 bends a muon with its momentum at the start of
        each step and applies the step's loss at its end, so in metres of uniform iron,
        where nothing else limits the steps, its default 0.2 (also FairShip's, EMZ) bends
        about 1 % less than the converged result (docs: the step-function study).  Fixed
        once Geant4 is initialised in this process."""
        if self.initialised:
            if ratio != self.muon_step_ratio:
                raise ValueError("geant4-shield: muon_step_ratio cannot change once Geant4 is initialised in a "
                                 f"process (it is {self.muon_step_ratio}); run the other setting in another process")
            return
        self.g4.G4EmParameters.Instance().SetStepFunctionMuHad(float(ratio), 0.1 * self.g4.mm)
        self.muon_step_ratio = float(ratio)

    def initialise(self) -> None:
        if not self.initialised:
            with quiet_stdout():
                self.run_manager.Initialize()
            self.initialised = True

    def seed(self, seed: int) -> None:
        """Seed Geant4's random engine from a non-negative integer (< 2^62)."""
        self.g4.G4Random.setTheSeeds([int(seed) & 0x7FFFFFFF, (int(seed) >> 31) & 0x7FFFFFFF, 0])

    def beam_on(self, events: int) -> None:
        self.initialise()
        with quiet_stdout():
            self.run_manager.BeamOn(events)
