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
from shipfastsim.plugins.reference.energy_loss import interpolate, ionisation_dedx
from shipfastsim.plugins.reference.tables import ENERGY_GRID, RADIATIVE_PROCESSES, ProcessTable, build_process_table

__all__ = ["StepPhysics", "StepSample", "RADIATIVE_PROCESSES", "PHYSICS_REVISION"]

_CACHE: dict[tuple[str, float], dict[str, ProcessTable]] = {}


#: Revision of the sampled physics; anything built from it (fast-shield tables) hashes it.
#: 3: multiple scattering's core width additive per step (`mechanics.scattering_sigma`), set against Geant4.
PHYSICS_REVISION = 3


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
        self._arrays = None  # `kernel_physics.ReferenceArrays`, built on the first sample

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
    def kernel_arrays(self):
        """The per-energy inputs of the scalar physics (`kernel_physics.ReferenceArrays`),
        built on first use."""
        if self._arrays is None:
            from shipfastsim.plugins.reference.kernel_physics import reference_arrays

            self._arrays = reference_arrays(self)
        return self._arrays

    def sample_step(self, material_index: torch.Tensor, p: torch.Tensor, L: torch.Tensor,
                    generator: torch.Generator) -> StepSample:
        """Sample the step of every muon (see module docstring): the transport kernel's
        own scalar physics (`kernel_physics.step_with_count`) applied to each muon, with
        muon i's random numbers from stream i of one seed drawn from ``generator``.

        Args:
            material_index: int64 index into ``materials`` per muon.
            p: momentum [GeV]; L: step length [cm] (>= 0).
            generator: torch random stream (the only randomness used).
        """
        from shipfastsim.plugins.reference.kernel_physics import sample_steps

        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        momentum, length = (t.detach().cpu().double().numpy() for t in (p, L))
        out = torch.from_numpy(sample_steps(self.kernel_arrays(), material_index.cpu().numpy(), momentum, length,
                                            seed)).to(p.device)
        return StepSample(*(out[:, k].to(p.dtype) for k in range(5)), out[:, 5].to(torch.int64))
