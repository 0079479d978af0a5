"""Units, particle ids and the coordinate frame used everywhere in shipfastsim.

Units
-----
Lengths are in **centimetres**, momenta and energies in **GeV** (momenta in GeV/c),
magnetic fields in **tesla**, densities in g/cm3.  The constants below let code say
``3 * m`` instead of ``300`` so that the unit is visible where a number is written.

Frame
-----
Right-handed, z along the beam, x horizontal, y vertical, with the origin of
FairShip's own frame (``ship_geo``): for the current FairShip geometry the target
starts at ``z = target_z0 = 0 cm``.  FairShip's muon ntuples (``pythia8-Geant4``)
store positions in **metres** in a frame where the start of the target sits at
``z = -50 m``; FairShip's ``run_simScript.py`` places them with
``primGen.SetTarget(ship_geo.target.z0 + 50*u.m, 0.)``, i.e.

    z_fairship[cm] = 100 * z_ntuple[m] + NTUPLE_Z_SHIFT + target_z0

`FairShipFrame` is the one place where this conversion lives; ``target_z0`` is a
parameter because FairShip has moved the target before.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "cm",
    "m",
    "mm",
    "GeV",
    "MeV",
    "tesla",
    "MUON_MASS",
    "BEAM_MOMENTUM",
    "C_LIGHT",
    "PDG_MU_MINUS",
    "PDG_MU_PLUS",
    "MUON_PDG_IDS",
    "NTUPLE_Z_SHIFT",
    "SHIP_PROTONS_PER_SPILL",
    "PROTONS_PER_SPILL_SOURCE",
    "FairShipFrame",
    "charge_of",
]

cm = 1.0
m = 100.0 * cm
mm = 0.1 * cm
GeV = 1.0
MeV = 1e-3 * GeV
tesla = 1.0

#: Bending constant: curvature [1/cm] = C_LIGHT * abs(q) B [T] / p [GeV/c].
C_LIGHT = 0.299792458e-2

#: Protons on target per SPS spill in the SHiP convention: "The SPS will deliver
#: 4 x 10^13 protons on target (POT) per spill" (SHiP Collaboration, Eur. Phys. J. C 80
#: (2020) 284, arXiv:2001.04784, section 1).
SHIP_PROTONS_PER_SPILL = 4.0e13
PROTONS_PER_SPILL_SOURCE = "SHiP convention, 4e13 POT per spill (Eur. Phys. J. C 80 (2020) 284, arXiv:2001.04784)"
#: Muon mass [GeV], PDG 2024.
MUON_MASS = 0.1056583755 * GeV
#: Momentum of the SPS protons on the SHiP target [GeV/c] (400 GeV/c: SHiP technical
#: proposal, CERN-SPSC-2015-016): no muon from the target can carry more.
BEAM_MOMENTUM = 400.0 * GeV

#: PDG Monte-Carlo ids: 13 is the negative muon, -13 the positive one.
PDG_MU_MINUS = 13
PDG_MU_PLUS = -13
MUON_PDG_IDS = (PDG_MU_MINUS, PDG_MU_PLUS)

#: Shift FairShip's run_simScript.py adds to ntuple z (``+50*u.m``) [cm].
NTUPLE_Z_SHIFT = 50.0 * m


def charge_of(pdg_id: int) -> int:
    """Electric charge (units of e) of a muon given its PDG id; 0 for anything else."""
    return {PDG_MU_MINUS: -1, PDG_MU_PLUS: +1}.get(int(pdg_id), 0)


@dataclass(frozen=True)
class FairShipFrame:
    """Conversion between the ntuple frame (metres) and shipfastsim's frame (cm).

    Attributes:
        target_z0: z of the start of the target in FairShip's frame [cm]
            (``ship_geo.target.z0``; 0 cm for the 2025 geometry).
        ntuple_offset: what FairShip's ``run_simScript.py`` adds to
            ``ship_geo.target.z0`` in ``primGen.SetTarget`` [cm]: `NTUPLE_Z_SHIFT`
            (+50 m, the frame of the SHiP GAN samples), while the run_simScript.py of
            2026 adds +70.845 m to every ``pythia8-Geant4`` file.
    """

    target_z0: float = 0.0 * cm
    ntuple_offset: float = NTUPLE_Z_SHIFT

    @property
    def z_shift(self) -> float:
        """Amount added to ``100 * z_ntuple`` to reach our frame [cm]."""
        return self.ntuple_offset + self.target_z0

    def z_from_ntuple(self, z_metres):
        """Ntuple z [m] to our z [cm]; works on floats, numpy arrays and tensors."""
        return z_metres * 100.0 + self.z_shift

    def z_to_ntuple(self, z_cm):
        """Our z [cm] to ntuple z [m]."""
        return (z_cm - self.z_shift) / 100.0
