"""`CatastrophicLosses`: a fast-shield step's losses above ``v_catastrophic`` of E.

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

from dataclasses import fields, replace

import torch

from shipfastsim.geometry.materials import Material
from shipfastsim.plugins.reference.energy_loss import knock_on_rate
from shipfastsim.plugins.reference.physics import RADIATIVE_PROCESSES, StepPhysics

__all__ = ["CatastrophicLosses"]


class CatastrophicLosses:
    """Catastrophic radiative losses for the materials of one geometry.

    Args:
        materials: (material, density scale) of each geometry material index.
        v_catastrophic: the relative energy transfer above which a loss is catastrophic.
        device, dtype: where and in which precision the per-step arithmetic runs
            (the few interactions are drawn in float64).
    """

    def __init__(self, materials: list[tuple[Material, float]], v_catastrophic: float, device: torch.device,
                 dtype: torch.dtype):
        from shipfastsim.plugins.reference.energy_loss import knock_on_rate

        physics = StepPhysics(materials, v_cut=v_catastrophic)
        self.v_catastrophic = v_catastrophic
        self.materials = materials
        self.processes = RADIATIVE_PROCESSES
        self.tables = [{name: _on(table, device) for name, table in per.items()} for per in physics.tables]
        log_e = physics.log_e
        self.log_e0, self.n_e = float(log_e[0]), log_e.numel()
        self.inv_dlog_e = 1.0 / float(log_e[1] - log_e[0])
        # Interactions per cm above the cut (radiative, and knock-on electrons above
        # v_catastrophic E), per (material, energy node), flattened.
        energy = log_e.exp()
        per_cm = torch.stack([(sum(per[name].rate for name in self.processes)
                               + knock_on_rate(energy, mat, v_catastrophic * energy)) * (mat.density * scale)
                              for per, (mat, scale) in zip(physics.tables, materials, strict=True)])
        self.rate_per_cm = per_cm.reshape(-1).to(device, dtype)
        self._physics = physics

    def kernel_arrays(self):
        """The same rates and spectra for the compiled kernel (`kernel_sampler.SamplerArrays`):
        (ln E0, 1/d ln E, n_E), rates per cm (material, energy node, brems / pair /
        photonuclear / knock-on / total), and per radiative process the cumulative
        distribution and ln v nodes (material, process, energy node, v node); float64 numpy."""
        import numpy as np

        physics = self._physics
        log_e = physics.log_e.to(torch.float64)
        energy = log_e.exp()
        rates, cdf, log_v = [], [], []
        for per, (mat, scale) in zip(physics.tables, self.materials, strict=True):
            if any(not torch.allclose(per[name].log_e.to(torch.float64), log_e, rtol=1e-12, atol=1e-12)
                   for name in self.processes):
                raise ValueError("catastrophic losses: the process tables do not share the rate grid")
            each = [per[name].rate for name in self.processes] + [knock_on_rate(energy, mat, self.v_catastrophic
                                                                                * energy)]
            each = torch.stack([r.to(torch.float64) for r in each], 1) * (mat.density * scale)
            rates.append(torch.cat([each, each.sum(1, keepdim=True)], 1))
            cdf.append(torch.stack([per[name].cdf for name in self.processes]))
            log_v.append(torch.stack([per[name].log_v for name in self.processes]))
        grid = np.array([float(log_e[0]), 1.0 / float(log_e[1] - log_e[0]), float(log_e.numel())])
        return (grid, *(torch.stack(t).to(torch.float64).contiguous().numpy() for t in (rates, cdf, log_v)))

    def rate(self, material: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """Interactions per cm [1/cm] above the cut at energy E [GeV] in each geometry material."""
        f = ((torch.log(energy) - self.log_e0) * self.inv_dlog_e).clamp(0.0, self.n_e - 1.0 - 1e-3)
        i = torch.floor(f)
        w = f - i
        base = material * self.n_e + i.to(torch.int64)
        lo, hi = self.rate_per_cm.index_select(0, base), self.rate_per_cm.index_select(0, base + 1)
        return lo + w * (hi - lo)


def _on(table, device: torch.device):
    """A reference `ProcessTable` with its tensors on ``device``."""
    return replace(table, **{f.name: getattr(table, f.name).to(device) for f in fields(table)})
