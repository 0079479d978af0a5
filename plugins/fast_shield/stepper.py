"""`FastTransport`: the shared stepping core with the step-table sampler.

The stepping itself (step control, helix, kick, plane recording, stopping) is
`shipfastsim.transport.Transport`, the same code as the reference's; here the
energy loss, scattering angle and lateral displacement of each step are drawn from
the step tables (`TableSampler`: one uniform number and one gather each), and the
steps are longer (the tables already hold the reference's sub-steps): 20 cm in
dense zones, up to 160 cm (the tables' longest step, ``long_step``) inside the magnets
as far as the lateral edges of their cross-sections allow, 40 cm elsewhere, at most
10 % of the energy and 0.1 rad of bending per step, controlled from the previous
step's material and field (one lookup less), float32 by default, on any device.  The
only randomness is the ``torch.Generator`` passed in (on the device).  Units: cm,
GeV/c, tesla.
"""

from __future__ import annotations

import torch

from shipfastsim.geometry import GeometryLookup, ShieldGeometry, get_material
from shipfastsim.plugins.fast_shield.catastrophic import CatastrophicLosses
from shipfastsim.plugins.fast_shield.sampler import TableSampler
from shipfastsim.plugins.fast_shield.tables import StepTables
from shipfastsim.transport import StepSettings, Transport
from shipfastsim.units import C_LIGHT

__all__ = ["FAST_STEPS", "FastTransport", "C_LIGHT"]

#: The fast transport's step control (see module docstring).
FAST_STEPS = StepSettings(dense_step=20.0, long_step=160.0, air_step=40.0, loss_fraction=0.1, max_bend=0.1,
                          min_momentum=0.5, control="previous", dtype=torch.float32)


class FastTransport(Transport):
    """The stepping core with a `TableSampler`; ``compile`` wraps the step in
    ``torch.compile`` (fuses its elementwise operations; about a minute to compile)."""

    def __init__(self, geometry: ShieldGeometry, tables: StepTables, settings: StepSettings = FAST_STEPS,
                 device: torch.device | str = "cpu", compile: bool = False):
        device = torch.device(device)
        names = GeometryLookup(geometry).materials
        materials = [(get_material(n), s) for n, s in names]
        kw = {"dtype": settings.dtype, "device": device}
        density = torch.tensor([m.density * s for m, s in materials], **kw)
        rows = [tables.material_index(n, s) for n, s in names]
        v_cat = tables.settings.v_catastrophic
        catastrophic = None if v_cat is None else CatastrophicLosses(materials, v_cat, device, settings.dtype)
        sampler = TableSampler(tables, rows, density, device, settings.dtype, catastrophic)
        super().__init__(geometry, sampler, settings, device)
        if compile:
            self._step = torch.compile(self._step, dynamic=True)
