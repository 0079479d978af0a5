"""`StepPhysics`: what happens to N muons over one step in one material each.

This is the API the fast propagator builds its tables with::

    physics = StepPhysics([(get_material("iron"), 1.0)], v_cut=0.01, delta_cut=0.01)
    out = physics.sample_step(material_index, p, L, generator)   # all torch float64
    out.delta_e, out.theta_x, out.theta_y, out.dx, out.dy

Energy loss = restricted ionisation (mean, with a Gaussian sub-cut fluctuation)
+ knock-on electrons above ``delta_cut`` [GeV] (sampled) + for bremsstrahlung, pair
production and photonuclear interaction the part below ``v_cut`` (continuous, with a
Gaussian fluctuation) and the interactions above it (Poisson number, v from the
tables).  The rates are taken at the muon's energy at the start of the step, so steps
should lose only a few percent of the energy (the stepper takes care of that).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shipfastsim.geometry.materials import Material
from shipfastsim.plugins.reference.cross_sections import MUON_MASS_GEV
from shipfastsim.plugins.reference.energy_loss import (
    expand_counts,
    interpolate,
    ionisation_dedx,
    knock_on_rate,
    sample_knock_on,
    sample_radiative,
)
from shipfastsim.plugins.reference.scattering import sample_scattering
from shipfastsim.plugins.reference.tables import ENERGY_GRID, ProcessTable, build_process_table

__all__ = ["StepPhysics", "StepSample", "RADIATIVE_PROCESSES", "PHYSICS_REVISION", "continuous_fluctuation"]

RADIATIVE_PROCESSES = ("brems", "pair", "photonuclear")
_CACHE: dict[tuple[str, float], dict[str, ProcessTable]] = {}


#: Revision of the sampled physics; anything built from it (fast-shield tables) hashes it.
#: 3: multiple scattering's core width additive per step (`mechanics.scattering_sigma`), set against Geant4.
PHYSICS_REVISION = 3


def continuous_fluctuation(mean: torch.Tensor, var: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Sampled below-cut loss with the given mean and variance, from standard normals z.

    A log-normal with matched mean and variance: Gaussian-like when the spread is
    small, and never negative when it is not.  A Gaussian clamped at zero would bias
    the mean upwards on short steps, making the loss depend on the step pattern.
    """
    s2 = torch.log1p(var / mean.clamp_min(1e-300) ** 2)
    return mean * torch.exp(torch.sqrt(s2) * z - 0.5 * s2)


@dataclass
class StepSample:
    """Result of one step per muon: energy lost [GeV], projected angles [rad] and
    lateral displacements [cm] in the muon's transverse frame, and the number of
    discrete radiative interactions (for diagnostics)."""

    delta_e: torch.Tensor
    theta_x: torch.Tensor
    theta_y: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor
    n_radiative: torch.Tensor


class StepPhysics:
    """Energy loss and scattering of muons in a list of (material, density scale)."""

    def __init__(self, materials: list[tuple[Material, float]], v_cut: float = 0.01, delta_cut: float = 0.01,
                 scattering_tail_factor: float = 2.5, v_max: float | None = None):
        """``v_max`` (None: none) drops the radiative interactions and knock-on
        electrons that take more than that fraction of E: the rest of the physics, for
        the fast-shield step tables, whose sampler draws those catastrophic losses
        itself (they are Poisson-independent of the smaller ones)."""
        self.materials = materials
        self.v_cut, self.delta_cut, self.tail_factor = v_cut, delta_cut, scattering_tail_factor
        self.v_max = v_max
        self.tables: list[dict[str, ProcessTable]] = []
        for mat, _ in materials:
            key = (mat.name, v_cut)
            if key not in _CACHE:  # tables depend on the material and the cut only
                _CACHE[key] = {name: build_process_table(name, mat, v_cut) for name in RADIATIVE_PROCESSES}
            self.tables.append(_CACHE[key])
        self.log_e = torch.log(torch.as_tensor(ENERGY_GRID, dtype=torch.float64))

    # ---- mean stopping powers (checks, step control) ---------------------------------
    def mean_dedx(self, index: int, E: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unrestricted mean stopping powers [GeV cm2/g] by process: ionisation, brems,
        pair, photonuclear, radiative (sum) and total."""
        mat, _ = self.materials[index]
        out = {"ionisation": ionisation_dedx(E, mat)}
        for name in RADIATIVE_PROCESSES:
            out[name] = E * interpolate(self.tables[index][name].b_total, self.log_e, E)
        out["radiative"] = out["brems"] + out["pair"] + out["photonuclear"]
        out["total"] = out["ionisation"] + out["radiative"]
        return out

    def continuous_dedx(self, index: int, E: torch.Tensor) -> torch.Tensor:
        """Continuous (below-cut) stopping power [GeV/cm], density scale included."""
        mat, scale = self.materials[index]
        b = sum(interpolate(self.tables[index][n].b_cont, self.log_e, E) for n in RADIATIVE_PROCESSES)
        return (ionisation_dedx(E, mat, self.delta_cut) + E * b) * mat.density * scale

    # ---- sampling ----------------------------------------------------------------------
    def sample_step(self, material_index: torch.Tensor, p: torch.Tensor, L: torch.Tensor,
                    generator: torch.Generator) -> StepSample:
        """Sample the step of every muon (see module docstring).

        Args:
            material_index: int64 index into ``materials`` per muon.
            p: momentum [GeV]; L: step length [cm] (>= 0).
            generator: torch random stream (the only randomness used).
        """
        n = p.shape[0]
        dtype, dev = p.dtype, p.device
        E = torch.sqrt(p**2 + MUON_MASS_GEV**2)
        beta = p / E
        out = StepSample(*(torch.zeros(n, dtype=dtype, device=dev) for _ in range(5)),
                         torch.zeros(n, dtype=torch.int64, device=dev))
        for index, (mat, scale) in enumerate(self.materials):
            sel = torch.nonzero(material_index == index).squeeze(1)
            if sel.numel() == 0:
                continue
            e, length, b = E[sel], L[sel], beta[sel]
            grams = length * mat.density * scale  # g/cm2 in the step
            tables = self.tables[index]
            # Continuous part and its Gaussian fluctuation (ionisation below delta_cut,
            # radiative below v_cut); the Bohr variance of restricted ionisation.
            cont = (ionisation_dedx(e, mat, self.delta_cut)
                    + e * sum(interpolate(tables[k].b_cont, self.log_e, e) for k in RADIATIVE_PROCESSES)) * grams
            xi = 0.5 * 0.307075e-3 * mat.z_over_a / b**2 * grams
            var = xi * self.delta_cut * (1.0 - 0.5 * b**2) + e**2 * grams * sum(
                interpolate(tables[k].var_cont, self.log_e, e) for k in RADIATIVE_PROCESSES)
            z = torch.randn(sel.numel(), generator=generator, dtype=dtype, device=dev)
            loss = continuous_fluctuation(cont, var, z)
            # Discrete: knock-on electrons, then the three radiative processes.
            n_rad = torch.zeros(sel.numel(), dtype=torch.int64, device=dev)
            rates = [("delta", knock_on_rate(e, mat, self.delta_cut))]
            rates += [(k, interpolate(tables[k].rate, self.log_e, e)) for k in RADIATIVE_PROCESSES]
            for name, rate in rates:
                counts = torch.poisson(rate * grams, generator=generator).long()
                total = int(counts.sum())
                if total == 0:
                    continue
                owner = expand_counts(counts)
                if name == "delta":
                    lost = sample_knock_on(e[owner], self.delta_cut, generator)
                    if self.v_max is not None:
                        lost = lost * torch.le(lost, self.v_max * e[owner]).to(lost.dtype)
                else:
                    v = sample_radiative(tables[name], e[owner], generator)
                    if self.v_max is not None:
                        v = v * torch.le(v, self.v_max).to(v.dtype)
                    lost = v * e[owner]
                    n_rad = n_rad + counts
                loss = loss.index_add(0, owner, lost)
            tx, ty, dx, dy = sample_scattering(mat, scale, p[sel], b, length, generator, self.tail_factor)
            out.delta_e[sel], out.theta_x[sel], out.theta_y[sel] = loss, tx, ty
            out.dx[sel], out.dy[sel], out.n_radiative[sel] = dx, dy, n_rad
        return out

    def sample(self, material: torch.Tensor, p: torch.Tensor, energy: torch.Tensor, length: torch.Tensor,
               t_step: torch.Tensor, generator: torch.Generator):
        """The stepping core's sampler interface (`shipfastsim.transport.StepSampler`):
        (loss [GeV], theta_x, theta_y [rad], dx, dy [cm]) of `sample_step`."""
        out = self.sample_step(material, p, length, generator)
        return out.delta_e, out.theta_x, out.theta_y, out.dx, out.dy
