"""`FastTransport`: the compiled transport kernel with the step-table sampler.

The stepping (step control, helix, kick, plane recording, stopping) is the kernel of
`shipfastsim.transport.kernel`, each muon's whole path in one CPU or GPU thread; the
energy loss, scattering angle and lateral displacement of each step are drawn from
the step tables (`kernel_sampler.sample_step`: one uniform number and one table read
each).  The steps are long (the tables already hold Geant4's or the reference's
sub-steps): 20 cm in dense zones, up to 40 cm (``long_step``) inside the magnets as far
as the lateral edges of their cross-sections allow, 40 cm elsewhere, at most 10 % of the
energy and 0.1 rad of bending per step, controlled from the previous step's material and
field (one lookup less).  Float64 arithmetic.  The only randomness is one seed drawn from
the ``torch.Generator`` passed in.  Units: cm, GeV/c, tesla.
"""

from __future__ import annotations

import functools

import torch

from shipfastsim.geometry import ShieldGeometry
from shipfastsim.plugins.fast_shield.tables import StepTables
from shipfastsim.transport import StepSettings
from shipfastsim.transport.kernel_transport import KernelTransport
from shipfastsim.units import C_LIGHT

__all__ = ["FAST_STEPS", "FastTransport", "C_LIGHT", "fast_kernels"]

#: The fast transport's step control (see module docstring).
# long_step 40 cm: with 160 cm (the tables' longest step) fast-shield let 1.54 times Geant4's
# muons into the TRY_2026 decay vessel; 40 cm agrees within 2 sigma for 13 % of the speed
# (docs/physics/geant4.md, "The transports against Geant4 on TRY_2026").
FAST_STEPS = StepSettings(dense_step=20.0, long_step=40.0, air_step=40.0, loss_fraction=0.1, max_bend=0.1,
                          min_momentum=0.5, control="previous")


@functools.cache
def fast_kernels():
    """The kernel launchers with the step-table sampler (compiled once per process)."""
    from shipfastsim.plugins.fast_shield.kernel_sampler import sample_step
    from shipfastsim.transport.kernel import make_kernel

    return make_kernel(sample_step)


class FastTransport(KernelTransport):
    """The compiled kernel with the step tables ``tables`` (see module docstring)."""

    def __init__(self, geometry: ShieldGeometry, tables: StepTables, settings: StepSettings = FAST_STEPS,
                 device: torch.device | str = "cpu"):
        from shipfastsim.plugins.fast_shield.kernel_sampler import sampler_arrays

        super().__init__(geometry, fast_kernels(), None, settings, device)
        self.tables = tables
        self.sampler_arrays = sampler_arrays(tables, self.lookup.materials, self.density)
