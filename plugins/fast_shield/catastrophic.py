"""A fast-shield step's losses above ``v_catastrophic`` of E (`catastrophic_arrays`).

The step tables hold every loss of a step except the bremsstrahlung, pair-production
and photonuclear interactions and the knock-on electrons that take more than
``v_catastrophic`` of the muon's energy (`TableSettings.v_catastrophic`; the tables
are built from the reference physics without them, `StepPhysics(v_max=...)`).  Those
are rare (each kind about 0.3-0.5 % per 40 cm of iron above v = 0.05) and make the
far tail of the loss distribution, which the tables' quantile grid resolves only to
1e-4, with a top node resting on a handful of samples that caps the loss a step can
take.  Here they come from the reference's own cross sections
(`plugins.reference.tables.build_process_table` with its cut at ``v_catastrophic``;
knock-ons from their closed-form rate): per muon and step one uniform number decides
whether an interaction happens, with probability lambda = rate(E) rho L (linear in
ln E between the reference's energy nodes; a second one in the same step, a fraction
lambda / 2 of them, is not drawn); for the few that interact the process is chosen by
its share of the rate and v is drawn as the reference draws it (the process's inverse
CDF; the knock-on spectrum above v_catastrophic E).  The loss is v E at the step's
start energy.  Units: GeV, cm, g/cm3.
"""

from __future__ import annotations

import numpy as np

from shipfastsim.geometry.materials import Material

__all__ = ["catastrophic_arrays"]


def catastrophic_arrays(materials: list[tuple[Material, float]], v_catastrophic: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's catastrophic-loss arrays (`kernel_sampler.SamplerArrays`) for
    (material, density scale) of each geometry material index: (ln E0, 1/d ln E, n_E) of
    the reference's energy grid; rates per cm above the cut (material, energy node:
    brems, pair, photonuclear, knock-on electrons above ``v_catastrophic`` E, total); and
    per radiative process the cumulative distribution and ln v nodes of v above the cut
    (material, process, energy node, v node).  float64 numpy."""
    import torch

    from shipfastsim.plugins.reference.energy_loss import knock_on_rate
    from shipfastsim.plugins.reference.kernel_physics import reference_arrays
    from shipfastsim.plugins.reference.physics import StepPhysics

    physics = StepPhysics(materials, v_cut=v_catastrophic)
    arrays = reference_arrays(physics)  # the radiative rates and spectra above v_cut = v_catastrophic
    energy = physics.log_e.to(torch.float64).exp()
    rates = []
    for k, (mat, scale) in enumerate(materials):
        knock_on = knock_on_rate(energy, mat, v_catastrophic * energy).numpy()  # the cut moves with E
        each = np.concatenate([arrays.rates[k][:, 1:4], knock_on[:, None]], 1) * (mat.density * scale)
        rates.append(np.concatenate([each, each.sum(1, keepdims=True)], 1))
    return arrays.cat_energy, np.ascontiguousarray(np.stack(rates)), arrays.rad_cdf, arrays.rad_log_v
