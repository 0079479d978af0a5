"""The reference transport: the shared stepping core with the detailed step physics.

`ReferenceTransport` is `shipfastsim.transport.Transport` (helix, kick, step control,
plane recording: one implementation for every transport) whose step sampler is
`StepPhysics` (restricted Bethe ionisation with sampled knock-ons, bremsstrahlung,
pair production and photonuclear losses, Highland core plus single-scattering tail).
Its step control is the careful one: at most 10 cm in dense zones, 2e-2 rad of
bending and 5 % of the energy per step, controlled from the material and field at
each step's start; float64 on the CPU.  Units: cm, GeV, tesla.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipfastsim.geometry import GeometryLookup, ShieldGeometry, get_material
from shipfastsim.plugins.reference.physics import StepPhysics
from shipfastsim.transport import STOP_REASONS, StepSettings, Transport, TransportResult

__all__ = ["PhysicsCuts", "REFERENCE_STEPS", "ReferenceTransport", "TransportResult", "STOP_REASONS"]

#: The reference's step control (see module docstring).
REFERENCE_STEPS = StepSettings(dense_step=10.0, air_step=50.0, loss_fraction=0.05, max_bend=0.02,
                               min_momentum=0.5, control="start")


@dataclass(frozen=True)
class PhysicsCuts:
    """Cuts of the detailed physics: radiative losses above the relative transfer
    ``v_cut`` and knock-on electrons above ``delta_cut`` [GeV] are sampled one by one;
    hard single scatters above ``scattering_tail_factor`` x the step's Gaussian width."""

    v_cut: float = 0.01
    delta_cut: float = 0.01
    scattering_tail_factor: float = 2.5


class ReferenceTransport(Transport):
    """The stepping core with `StepPhysics` as its sampler, on the CPU in float64."""

    def __init__(self, geometry: ShieldGeometry, steps: StepSettings = REFERENCE_STEPS,
                 cuts: PhysicsCuts = PhysicsCuts()):
        materials = [(get_material(n), s) for n, s in GeometryLookup(geometry).materials]
        physics = StepPhysics(materials, cuts.v_cut, cuts.delta_cut, cuts.scattering_tail_factor)
        super().__init__(geometry, physics, steps, "cpu")
        self.cuts = cuts
