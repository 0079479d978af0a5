"""The reference's detailed step physics as scalar code for the compiled transport kernel.

One muon's step, as `physics.StepPhysics.sample_step` draws it for tensors:

* the continuous loss below the cuts (restricted Bethe ionisation below ``delta_cut``,
  radiative losses below ``v_cut``) with the Bohr variance of restricted ionisation
  plus the radiative variance, drawn as the log-normal of matched mean and variance
  (Gaussian-like for a small spread, never negative: a Gaussian clamped at zero would
  bias the mean upwards on short steps and make the loss depend on the step pattern);
* Poisson numbers of knock-on electrons above ``delta_cut`` (`knock_on`: 1/T^2 accepted
  with the spin-1/2 bracket) and of bremsstrahlung, pair production and photonuclear
  interactions above ``v_cut`` (`radiative_transfer`: the inverse CDF in ln v between
  the two energy nodes, chosen at random with linear weights);
* multiple scattering: the Gaussian core (`mechanics.scattering_sigma`) with its
  correlated displacement (z1/sqrt(12) + z2/2) L theta0 (PDG review), plus Poisson
  single scatters off nuclei above theta_c = ``tail_factor`` x the core: screened
  Rutherford (Thomas-Fermi screening, Z(Z+1) for the atomic electrons) thinned by the
  Gaussian nuclear form factor exp(-theta^2 / (3 theta_N^2)), theta_N = hbar c / (p R),
  R = 1.2 A^(1/3) fm, each displacing the muon by (L - s) theta from its depth s: the
  large-angle (Moliere) excess that one Gaussian misses.

The per-energy inputs (continuous stopping power and variance, rates, the radiative
spectra) are tabulated once per material on the reference's energy grid
(`reference_arrays`, from the same torch functions) and interpolated linearly in
ln E.  `radiative_transfer` and `knock_on` are also fast-shield's catastrophic draws.
Units: GeV, cm, g/cm2, rad.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from shipfastsim.plugins.reference.cross_sections import AVOGADRO, ELECTRON_MASS, ELECTRON_RADIUS, MUON_MASS_GEV
from shipfastsim.plugins.reference.energy_loss import K_BETHE, max_energy_transfer
from shipfastsim.transport.jit import jitable, uniform
from shipfastsim.transport.mechanics import azimuth

__all__ = ["ReferenceArrays", "reference_arrays", "reference_step", "step_with_count", "sample_steps",
           "radiative_transfer", "knock_on", "poisson", "normal_pair"]

_HBARC = 0.1973269804e-13  # GeV cm
_SQRT12 = math.sqrt(12.0)


class ReferenceArrays(NamedTuple):
    """Per geometry material, on the reference's energy grid (float64 numpy)."""

    cat_energy: np.ndarray  # ln E0, 1/d ln E, n_E
    continuous: np.ndarray  # (M, n_E) mean loss below the cuts [GeV cm2/g]
    variance: np.ndarray  # (M, n_E) radiative variance below v_cut / E^2 [cm2/g]
    rates: np.ndarray  # (M, n_E, 4) knock-ons above delta_cut, brems, pair, photonuclear above v_cut [per g/cm2]
    rad_cdf: np.ndarray  # (M, 3, n_E, N_V) cumulative distribution of ln v per radiative process
    rad_log_v: np.ndarray  # (M, 3, n_E, N_V)
    props: np.ndarray  # (M, 6) density [g/cm3] (scale included), Z/A, Z, A, Z^(1/3), radiation length [g/cm2]
    cuts: np.ndarray  # delta_cut [GeV], tail factor, v_max (0: none)


def reference_arrays(physics) -> ReferenceArrays:
    """`ReferenceArrays` of a `StepPhysics` (its materials, cuts and tables)."""
    import torch

    from shipfastsim.plugins.reference.energy_loss import ionisation_dedx, knock_on_rate
    from shipfastsim.plugins.reference.tables import RADIATIVE_PROCESSES

    log_e = physics.log_e.to(torch.float64)
    energy = log_e.exp()
    continuous, variance, rates, cdf, log_v, props = [], [], [], [], [], []
    for tables, (mat, scale) in zip(physics.tables, physics.materials, strict=True):
        continuous.append(ionisation_dedx(energy, mat, physics.delta_cut)
                          + energy * sum(tables[k].b_cont for k in RADIATIVE_PROCESSES))
        variance.append(sum(tables[k].var_cont for k in RADIATIVE_PROCESSES))
        rates.append(torch.stack([knock_on_rate(energy, mat, physics.delta_cut)]
                                 + [tables[k].rate for k in RADIATIVE_PROCESSES], 1))
        cdf.append(torch.stack([tables[k].cdf for k in RADIATIVE_PROCESSES]))
        log_v.append(torch.stack([tables[k].log_v for k in RADIATIVE_PROCESSES]))
        props.append([mat.density * scale, mat.z_over_a, mat.Z, mat.A, mat.Z ** (1.0 / 3.0), mat.radiation_length])

    def f64(items):
        return np.ascontiguousarray(torch.stack([t.to(torch.float64) for t in items]).numpy())

    grid = np.array([float(log_e[0]), 1.0 / float(log_e[1] - log_e[0]), float(log_e.numel())])
    return ReferenceArrays(grid, f64(continuous), f64(variance), f64(rates), f64(cdf), f64(log_v),
                           np.array(props, dtype=np.float64),
                           np.array([physics.delta_cut, physics.tail_factor, physics.v_max or 0.0],
                                    dtype=np.float64))


@jitable
def poisson(mean, key, counter):
    """A Poisson number of mean ``mean`` by inversion; returns (n, next counter)."""
    u = uniform(key, counter)
    term = math.exp(-mean)
    cumulative, n = term, 0
    while u > cumulative and n < 10_000:
        n += 1
        term *= mean / n
        cumulative += term
    return n, counter + 1


@jitable
def normal_pair(key, counter):
    """Two independent standard normals (Box-Muller); returns (z0, z1, next counter)."""
    radius = math.sqrt(-2.0 * math.log(1.0 - uniform(key, counter)))
    cos_angle, sin_angle = azimuth(uniform(key, counter + 1))
    return radius * cos_angle, radius * sin_angle, counter + 2


@jitable
def radiative_transfer(tab, material, process, energy, r_bin, r_v):
    """Relative transfer v of radiative ``process`` (0 brems, 1 pair, 2 photonuclear)
    above the cut of ``tab``'s spectra: the energy node drawn between the two
    neighbours with linear weights in ln E, then ln v by inverse CDF."""
    log_e0, inv_dlog_e, n_e = tab.cat_energy
    pos = (min(max(math.log(energy), log_e0), log_e0 + (n_e - 1.0) / inv_dlog_e) - log_e0) * inv_dlog_e
    i = int(min(max(math.floor(pos), 0.0), n_e - 2.0))
    if r_bin < pos - i:
        i += 1
    cdf, log_v = tab.rad_cdf[material, process, i], tab.rad_log_v[material, process, i]
    lo, hi = 1, cdf.shape[0] - 1
    while lo < hi:  # first node with cdf >= r_v, at least 1
        mid = (lo + hi) // 2
        if cdf[mid] < r_v:
            lo = mid + 1
        else:
            hi = mid
    frac = min(max((r_v - cdf[lo - 1]) / max(cdf[lo] - cdf[lo - 1], 1e-300), 0.0), 1.0)
    return math.exp(log_v[lo - 1] + frac * (log_v[lo] - log_v[lo - 1]))


@jitable
def knock_on(energy, cut, key, counter):
    """Knock-on kinetic energy [GeV] above ``cut`` (spin-1/2 spectrum, PDG eq. 34.5): 1/T^2
    accepted with the spin-1/2 bracket over its maximum; returns (T, next counter)."""
    gamma = energy / MUON_MASS_GEV
    beta2 = 1.0 - 1.0 / (gamma * gamma)
    w = max(max_energy_transfer(gamma), cut * (1.0 + 1e-9))
    top = 1.0 + w * w / (2.0 * energy * energy)
    while True:
        t = 1.0 / (1.0 / cut - uniform(key, counter) * (1.0 / cut - 1.0 / w))
        accept = uniform(key, counter + 1)
        counter += 2
        if accept * top < 1.0 - beta2 * t / w + t * t / (2.0 * energy * energy):
            return t, counter


@jitable
def _interpolate(row, i, f):
    return row[i] + f * (row[i + 1] - row[i])


@jitable
def reference_step(tab, material, p, energy, length, sigma, key, counter):
    """Energy loss [GeV], angles tx, ty [rad], displacements dx, dy [cm] of one step
    (see module docstring) and the next counter: the kernel's sampler interface."""
    loss, tx, ty, dx, dy, _, counter = step_with_count(tab, material, p, energy, length, sigma, key, counter)
    return loss, tx, ty, dx, dy, counter


@jitable
def step_with_count(tab, material, p, energy, length, sigma, key, counter):
    """`reference_step` and the number of radiative interactions above the cut (a
    diagnostic); with ``v_max`` > 0 the transfers above v_max E are drawn and dropped
    (the physics without catastrophic losses, for the fast-shield tables)."""
    log_e0, inv_dlog_e, n_e = tab.cat_energy
    pos = (min(max(math.log(energy), log_e0), log_e0 + (n_e - 1.0) / inv_dlog_e) - log_e0) * inv_dlog_e
    i = int(min(max(math.floor(pos), 0.0), n_e - 2.0))
    f = pos - i
    rho, z_over_a, z_atom, a_atom, z_third = tab.props[material, :5]
    delta_cut, tail_factor, v_max = tab.cuts[0], tab.cuts[1], tab.cuts[2]
    grams = length * rho
    beta = p / energy
    mean = _interpolate(tab.continuous[material], i, f) * grams
    xi = 0.5 * K_BETHE * z_over_a / (beta * beta) * grams
    var = xi * delta_cut * (1.0 - 0.5 * beta * beta) + energy * energy * grams * _interpolate(
        tab.variance[material], i, f)
    z, _, counter = normal_pair(key, counter)
    s2 = math.log1p(var / max(mean, 1e-300) ** 2)
    loss = mean * math.exp(math.sqrt(s2) * z - 0.5 * s2)
    rates = tab.rates[material]
    n, counter = poisson((rates[i, 0] + f * (rates[i + 1, 0] - rates[i, 0])) * grams, key, counter)
    for _ in range(n):
        t, counter = knock_on(energy, delta_cut, key, counter)
        if v_max <= 0.0 or t <= v_max * energy:
            loss += t
    n_radiative = 0
    for process in range(3):
        n, counter = poisson((rates[i, process + 1] + f * (rates[i + 1, process + 1] - rates[i, process + 1]))
                             * grams, key, counter)
        n_radiative += n
        for _ in range(n):
            v = radiative_transfer(tab, material, process, energy, uniform(key, counter), uniform(key, counter + 1))
            if v_max <= 0.0 or v <= v_max:
                loss += v * energy
            counter += 2
    # Multiple scattering: Gaussian core and its correlated displacement ...
    z0, z1, counter = normal_pair(key, counter)
    z2, z3, counter = normal_pair(key, counter)
    tx, ty = z0 * sigma, z1 * sigma
    dx, dy = length * sigma * (z2 / _SQRT12 + 0.5 * z0), length * sigma * (z3 / _SQRT12 + 0.5 * z1)
    # ... and hard single scatters above theta_c (space angle), screened Rutherford.
    theta_c2 = 2.0 * (tail_factor * sigma) ** 2
    theta_a2 = (ELECTRON_MASS / 137.036 / 0.885 * z_third / p) ** 2  # Thomas-Fermi screening
    k = 4.0 * math.pi * z_atom * (z_atom + 1.0) * (ELECTRON_RADIUS * ELECTRON_MASS / (p * beta)) ** 2
    n, counter = poisson(AVOGADRO * rho / a_atom * length * k / (theta_c2 + theta_a2), key, counter)
    theta_n2 = (_HBARC / (p * 1.2e-13 * a_atom ** (1.0 / 3.0))) ** 2
    for _ in range(n):
        # 1/(theta^2 + theta_a^2) is uniform in (0, 1/(theta_c^2 + theta_a^2)].
        inv = uniform(key, counter) / (theta_c2 + theta_a2)
        theta2 = max(1.0 / max(inv, 1e-300) - theta_a2, 0.0)
        if uniform(key, counter + 1) < math.exp(-theta2 / (3.0 * theta_n2)) and theta2 < 1.0:
            theta = math.sqrt(theta2)
            cos_phi, sin_phi = azimuth(uniform(key, counter + 2))
            lever = length * (1.0 - uniform(key, counter + 3))  # scattered at a uniform depth
            tx += theta * cos_phi
            ty += theta * sin_phi
            dx += lever * theta * cos_phi
            dy += lever * theta * sin_phi
        counter += 4
    return loss, tx, ty, dx, dy, n_radiative, counter


_LOOP: dict = {}


def sample_steps(tab: ReferenceArrays, material: np.ndarray, p: np.ndarray, length: np.ndarray, seed: int
                 ) -> np.ndarray:
    """`step_with_count` for arrays of muons (material index, momentum [GeV/c], step
    length [cm]), muon i drawing from stream i of ``seed``: (N, 6) loss [GeV], tx, ty
    [rad], dx, dy [cm], radiative interactions.  Compiled on first use; all threads."""
    if not _LOOP:
        from shipfastsim.transport.jit import muon_key, numba
        from shipfastsim.transport.mechanics import scattering_sigma
        from shipfastsim.units import MUON_MASS

        nb = numba()

        @nb.njit(parallel=True, error_model="numpy", _nrt=False)
        def loop(tab, material, p, length, seed, out):
            for i in nb.prange(p.shape[0]):
                m = material[i]
                energy = math.sqrt(p[i] * p[i] + MUON_MASS * MUON_MASS)
                t_step = length[i] * tab.props[m, 0] / tab.props[m, 5]
                sigma = scattering_sigma(p[i], energy, t_step)
                loss, tx, ty, dx, dy, n_rad, _ = step_with_count(tab, m, p[i], energy, length[i], sigma,
                                                                 muon_key(seed, i), 0)
                out[i, 0], out[i, 1], out[i, 2], out[i, 3], out[i, 4], out[i, 5] = loss, tx, ty, dx, dy, n_rad

        _LOOP["steps"] = loop
    out = np.empty((len(p), 6))
    _LOOP["steps"](tab, np.ascontiguousarray(material, dtype=np.int64), np.ascontiguousarray(p, dtype=np.float64),
                   np.ascontiguousarray(length, dtype=np.float64), np.uint64(seed), out)
    return out
