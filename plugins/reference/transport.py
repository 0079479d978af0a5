"""The reference transport: the compiled transport kernel with the detailed step physics.

`ReferenceTransport` is `shipfastsim.transport.KernelTransport` (helix, kick, step
control, geometry lookup, plane recording: one implementation for every transport)
whose step sampler is `kernel_physics.reference_step` (restricted Bethe ionisation
with sampled knock-ons, bremsstrahlung, pair production and photonuclear losses, the
scattering core plus single-scattering tail; the per-energy inputs from `StepPhysics`).
Its step control is the careful one: at most 10 cm in dense zones, 2e-2 rad of
bending and 5 % of the energy per step, controlled from the material and field at
each step's start; float64, on the CPU (all threads) or a CUDA device.  Units: cm,
GeV, tesla.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from shipfastsim.geometry import ShieldGeometry
from shipfastsim.plugins.reference.physics import StepPhysics
from shipfastsim.transport import STOP_REASONS, StepSettings, TransportResult
from shipfastsim.transport.kernel_transport import KernelTransport

__all__ = ["PhysicsCuts", "REFERENCE_STEPS", "ReferenceTransport", "TransportResult", "STOP_REASONS",
           "reference_kernels"]

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


@functools.cache
def reference_kernels():
    """The kernel launchers with the detailed step physics (compiled once per process)."""
    from shipfastsim.plugins.reference.kernel_physics import reference_step
    from shipfastsim.transport.kernel import make_kernel

    return make_kernel(reference_step)


class ReferenceTransport(KernelTransport):
    """The compiled kernel with the detailed physics of ``cuts`` (see module docstring)."""

    def __init__(self, geometry: ShieldGeometry, steps: StepSettings = REFERENCE_STEPS,
                 cuts: PhysicsCuts = PhysicsCuts(), device: torch.device | str = "cpu"):
        super().__init__(geometry, reference_kernels(), None, steps, device)
        self.physics = StepPhysics(self.geometry_materials, cuts.v_cut, cuts.delta_cut, cuts.scattering_tail_factor)
        self.sampler_arrays = self.physics.kernel_arrays()
        self.cuts = cuts
