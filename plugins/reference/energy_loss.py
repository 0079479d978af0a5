"""Muon energy loss: restricted Bethe ionisation, knock-on electrons, radiative
losses split into a continuous part and sampled discrete interactions (torch).

Units: energies and momenta in GeV, lengths in cm, densities in g/cm3, stopping
powers in GeV cm2/g unless said otherwise.  Every sampler takes an explicit
``torch.Generator``; nothing here loops over muons.
"""

from __future__ import annotations

import math

import torch

from shipfastsim.geometry.materials import Material
from shipfastsim.plugins.reference.cross_sections import ALPHA, ELECTRON_MASS, MUON_MASS_GEV
from shipfastsim.transport.jit import jitable

__all__ = [
    "K_BETHE",
    "max_energy_transfer",
    "density_effect",
    "ionisation_dedx",
    "knock_on_rate",
    "interpolate",
]

#: 4 pi N_A r_e^2 m_e c^2 [GeV cm2/mol].
K_BETHE = 0.307075e-3
_ME, _M = ELECTRON_MASS, MUON_MASS_GEV


@jitable
def max_energy_transfer(gamma: torch.Tensor) -> torch.Tensor:
    """Largest kinetic energy [GeV] a muon of Lorentz factor gamma gives an electron."""
    bg2 = gamma**2 - 1.0
    r = _ME / _M
    return 2.0 * _ME * bg2 / (1.0 + 2.0 * gamma * r + r * r)


def density_effect(bg: torch.Tensor, mat: Material) -> torch.Tensor:
    """Sternheimer density-effect correction delta(beta gamma)."""
    a, k, x0, x1, cbar, delta0 = mat.sternheimer
    x = torch.log10(bg)
    mid = 2.0 * math.log(10.0) * x - cbar + a * (x1 - x).clamp_min(0.0) ** k
    low = delta0 * torch.pow(10.0, 2.0 * (x - x0))
    high = 2.0 * math.log(10.0) * x - cbar
    return torch.where(x >= x1, high, torch.where(x >= x0, mid, low))


def ionisation_dedx(E: torch.Tensor, mat: Material, t_cut: float | None = None,
                    radiative_correction: bool = True) -> torch.Tensor:
    """Mean ionisation loss [GeV cm2/g] from transfers below ``t_cut`` [GeV]
    (None: unrestricted), Bethe formula with spin-1/2 term and density effect, plus
    (optionally) the bremsstrahlung-on-atomic-electrons correction that the PDG
    muon tables include in their ionisation column."""
    gamma = E / _M
    bg = torch.sqrt((gamma**2 - 1.0).clamp_min(1e-12))
    beta2 = (bg / gamma) ** 2
    w_max = max_energy_transfer(gamma)
    t_up = w_max if t_cut is None else torch.minimum(w_max, torch.as_tensor(t_cut, dtype=E.dtype))
    i_gev = mat.I_eV * 1e-9
    bracket = (torch.log(2.0 * _ME * bg**2 * t_up / i_gev**2) - beta2 * (1.0 + t_up / w_max)
               - density_effect(bg, mat) + 0.25 * (t_up / E) ** 2)
    dedx = 0.5 * K_BETHE * mat.z_over_a / beta2 * bracket
    if radiative_correction:
        # Kelner-Kokoulin-Petrukhin: photon emission in muon-electron collisions.
        l2 = torch.log(2.0 * w_max / _ME)
        corr = K_BETHE / (4.0 * math.pi) * mat.z_over_a * ALPHA * (torch.log(2.0 * E / _M) - l2 / 3.0) * l2**2
        dedx = dedx + corr.clamp_min(0.0)
    return dedx


def knock_on_rate(E: torch.Tensor, mat: Material, t_cut: float | torch.Tensor) -> torch.Tensor:
    """Knock-on electrons with kinetic energy above ``t_cut`` [GeV] (one value, or one
    per entry of E) per g/cm2."""
    gamma = E / _M
    beta2 = 1.0 - 1.0 / gamma**2
    w = max_energy_transfer(gamma)
    tc = torch.as_tensor(t_cut, dtype=E.dtype)
    integral = (1.0 / tc - 1.0 / w) - beta2 / w * torch.log(w / tc) + (w - tc) / (2.0 * E**2)
    return torch.where(w > tc, 0.5 * K_BETHE * mat.z_over_a / beta2 * integral, torch.zeros_like(E))


def interpolate(table: torch.Tensor, log_e_grid: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """Linear interpolation in ln E of a per-energy table (values clamp at the grid ends)."""
    le = torch.log(E).clamp(float(log_e_grid[0]), float(log_e_grid[-1]))
    step = float(log_e_grid[1] - log_e_grid[0])
    pos = (le - float(log_e_grid[0])) / step
    i = pos.floor().long().clamp(0, log_e_grid.numel() - 2)
    f = pos - i
    return table[i] * (1.0 - f) + table[i + 1] * f
