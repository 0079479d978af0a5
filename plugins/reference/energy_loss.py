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
from shipfastsim.plugins.reference.tables import ProcessTable
from shipfastsim.transport.jit import jitable

__all__ = [
    "K_BETHE",
    "max_energy_transfer",
    "density_effect",
    "ionisation_dedx",
    "knock_on_rate",
    "sample_knock_on",
    "interpolate",
    "sample_radiative",
    "expand_counts",
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


def sample_knock_on(E: torch.Tensor, t_cut: float | torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sample one knock-on kinetic energy [GeV] above ``t_cut`` (one value, or one per
    entry) per entry of E.

    The spin-1/2 spectrum (1/T^2)(1 - beta^2 T/W + T^2/(2E^2)) is sampled from 1/T^2
    and accepted with the bracket over its maximum; the loop runs over rejection
    rounds (a few), vectorised over muons."""
    gamma = E / _M
    beta2 = 1.0 - 1.0 / gamma**2
    cut = torch.as_tensor(t_cut, dtype=E.dtype, device=E.device).expand_as(E)
    w = torch.maximum(max_energy_transfer(gamma), cut * (1 + 1e-9))
    out = torch.empty_like(E)
    todo = torch.arange(E.shape[0], device=E.device)
    while todo.numel():
        e, b2, wt, tc = E[todo], beta2[todo], w[todo], cut[todo]
        u = torch.rand(todo.numel(), generator=generator, dtype=E.dtype, device=E.device)
        t = 1.0 / (1.0 / tc - u * (1.0 / tc - 1.0 / wt))
        f = (1.0 - b2 * t / wt + t**2 / (2.0 * e**2)) / (1.0 + wt**2 / (2.0 * e**2))
        accept = torch.rand(todo.numel(), generator=generator, dtype=E.dtype, device=E.device) < f
        out[todo[accept]] = t[accept]
        todo = todo[~accept]
    return out


def interpolate(table: torch.Tensor, log_e_grid: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """Linear interpolation in ln E of a per-energy table (values clamp at the grid ends)."""
    le = torch.log(E).clamp(float(log_e_grid[0]), float(log_e_grid[-1]))
    step = float(log_e_grid[1] - log_e_grid[0])
    pos = (le - float(log_e_grid[0])) / step
    i = pos.floor().long().clamp(0, log_e_grid.numel() - 2)
    f = pos - i
    return table[i] * (1.0 - f) + table[i + 1] * f


def sample_radiative(tab: ProcessTable, E: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sample one relative energy transfer v above the cut per entry of E.

    The energy bin is chosen stochastically between the two grid neighbours (weights
    by the position in the bin), then ln v by inverse CDF with linear interpolation."""
    le = torch.log(E).clamp(float(tab.log_e[0]), float(tab.log_e[-1]))
    step = float(tab.log_e[1] - tab.log_e[0])
    pos = (le - float(tab.log_e[0])) / step
    i = pos.floor().long().clamp(0, tab.log_e.numel() - 2)
    up = torch.rand(E.shape, generator=generator, dtype=E.dtype, device=E.device) < (pos - i)
    i = i + up.long()
    cdf, log_v = tab.cdf[i], tab.log_v[i]
    u = torch.rand((E.shape[0], 1), generator=generator, dtype=E.dtype, device=E.device)
    j = torch.searchsorted(cdf, u).clamp(1, cdf.shape[1] - 1)
    c0, c1 = cdf.gather(1, j - 1), cdf.gather(1, j)
    l0, l1 = log_v.gather(1, j - 1), log_v.gather(1, j)
    frac = ((u - c0) / (c1 - c0).clamp_min(1e-300)).clamp(0.0, 1.0)
    return torch.exp(l0 + frac * (l1 - l0)).squeeze(1)


def expand_counts(counts: torch.Tensor) -> torch.Tensor:
    """Index i repeated counts[i] times (int64 counts); the same as
    ``repeat_interleave(arange(n), counts)``, which is far slower on the CPU."""
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1]) if ends.numel() else 0
    return torch.searchsorted(ends, torch.arange(total, device=counts.device), right=True)
