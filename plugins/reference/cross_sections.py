"""Differential cross sections of the muon's radiative processes (numpy, float64).

Each function returns dsigma/dv per gram of material [cm2/g] for muon total
energies ``E`` [GeV] and relative energy transfers ``v = epsilon / E`` (broadcast
together); outside the kinematic range the result is 0.  The forms are those used
by Groom, Mokhov & Striganov (ADNDT 78 (2001) 183) for the PDG muon tables and by
Geant4's standard muon models:

* bremsstrahlung: Kelner, Kokoulin & Petrukhin with the nuclear and atomic-electron
  terms (Petrukhin-Shestakov nuclear size, B = 183, B' = 1429);
* e+e- pair production: Kokoulin & Petrukhin, integrated over the pair asymmetry rho
  with Gauss-Legendre quadrature in ln(1 - rho);
* photonuclear: Bezrukov & Bugaev with sigma_gammaN(eps) = 114.3 + 1.647 ln^2(0.0213 eps) mub
  and nuclear shadowing G(x).

This module is evaluated once per material at start-up to build tables; it is never
called per muon.
"""

from __future__ import annotations

import numpy as np

from shipfastsim.geometry.materials import Material
from shipfastsim.units import MUON_MASS

__all__ = [
    "ELECTRON_MASS", "MUON_MASS_GEV", "ALPHA", "ELECTRON_RADIUS", "AVOGADRO",
    "brems_dsigma_dv", "pair_dsigma_dv", "photonuclear_dsigma_dv", "v_range", "PROCESSES",
]

ELECTRON_MASS = 0.51099895e-3  # GeV
MUON_MASS_GEV = MUON_MASS  # GeV: the one muon mass, shipfastsim.units
ALPHA = 1.0 / 137.035999084
ELECTRON_RADIUS = 2.8179403262e-13  # cm
AVOGADRO = 6.02214076e23  # 1/mol
SQRT_E = np.sqrt(np.e)
_M, _ME = MUON_MASS_GEV, ELECTRON_MASS

#: Gauss-Legendre nodes on [0, 1] for the rho integral of pair production.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)
_GL_X, _GL_W = 0.5 * (_GL_X + 1.0), 0.5 * _GL_W


def v_range(process: str, E: np.ndarray, mat: Material) -> tuple[np.ndarray, np.ndarray]:
    """Kinematic limits (v_min, v_max) of a process for total energy E [GeV]."""
    E = np.asarray(E, dtype=np.float64)
    z13 = mat.Z ** (1.0 / 3.0)
    if process == "brems":
        return np.full_like(E, 1e-7), 1.0 - 0.75 * SQRT_E * (_M / E) * z13
    if process == "pair":
        return 4.0 * _ME / E, 1.0 - 0.75 * SQRT_E * (_M / E) * z13
    if process == "photonuclear":
        return 0.2 / E, 1.0 - _M / E
    raise KeyError(process)


def brems_dsigma_dv(E, v, mat: Material) -> np.ndarray:
    """Bremsstrahlung dsigma/dv [cm2/g]."""
    E, v = np.broadcast_arrays(np.asarray(E, float), np.asarray(v, float))
    Z, A = mat.Z, mat.A
    b, b1 = (202.4, 446.0) if Z < 1.5 else (183.0, 1429.0)
    z13 = Z ** (-1.0 / 3.0)
    dn = 1.54 * A**0.27
    dn_star = dn ** (1.0 - 1.0 / Z)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = _M**2 * v / (2.0 * E * (1.0 - v))
        phi_n = np.log(b * z13 * (_M + delta * (dn_star * SQRT_E - 2.0))
                       / (dn_star * (_ME + delta * SQRT_E * b * z13)))
        phi_n = np.clip(phi_n, 0.0, None)
        # Atomic electrons contribute only below the kinematic limit of muon-electron brems.
        eps_max_e = E / (1.0 + 0.5 * _M**2 / (_ME * E))
        phi_e = np.log(b1 * z13**2 * _M
                       / ((1.0 + delta * _M / (_ME**2 * SQRT_E)) * (_ME + delta * SQRT_E * b1 * z13**2)))
        phi_e = np.where(v * E < eps_max_e, np.clip(phi_e, 0.0, None), 0.0)
        coeff = 16.0 / 3.0 * ALPHA * (ELECTRON_RADIUS * _ME / _M) ** 2
        out = coeff / v * Z * (Z * phi_n + phi_e) * (1.0 - v + 0.75 * v**2) * AVOGADRO / A
    vmin, vmax = v_range("brems", E, mat)
    return np.where((v > 0) & (v < vmax) & (v >= vmin) & np.isfinite(out), out, 0.0)


def _pair_zeta(E: np.ndarray, Z: float) -> np.ndarray:
    # Contribution of atomic electrons, Z^2 -> Z (Z + zeta) (Kelner 1998 fit).
    g = E / _M
    num = 0.073 * np.log(g / (1.0 + 1.95e-5 * Z ** (2.0 / 3.0) * g)) - 0.26
    den = 0.058 * np.log(g / (1.0 + 5.3e-5 * Z ** (1.0 / 3.0) * g)) - 0.14
    return np.where(num > 0, num / den, 0.0)


def pair_dsigma_dv(E, v, mat: Material) -> np.ndarray:
    """e+e- pair production dsigma/dv [cm2/g]."""
    E, v = np.broadcast_arrays(np.asarray(E, float), np.asarray(v, float))
    Z, A = mat.Z, mat.A
    z13 = Z ** (1.0 / 3.0)
    bz = 183.0 / z13
    vmin, vmax = v_range("pair", E, mat)
    ok = (v > vmin) & (v < vmax)
    vv = np.where(ok, v, 0.5 * (vmin + vmax).clip(1e-6, 0.999))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rho_max = (1.0 - 6.0 * _M**2 / (E**2 * (1.0 - vv))) * np.sqrt(np.clip(1.0 - 4.0 * _ME / (E * vv), 0.0, None))
        rho_max = np.clip(rho_max, 0.0, 1.0 - 1e-12)
        t_min = np.log(1.0 - rho_max)  # integrate in t = ln(1 - rho) in [t_min, 0]
        beta = vv**2 / (2.0 * (1.0 - vv))
        total = np.zeros_like(vv)
        for x, w in zip(_GL_X, _GL_W, strict=True):
            a = np.exp(t_min * x)  # 1 - rho
            rho = 1.0 - a
            r2 = rho**2
            one_r2 = 1.0 - r2
            xi = (_M * vv) ** 2 * one_r2 / (4.0 * _ME**2 * (1.0 - vv))
            ye = (5.0 - r2 + 4.0 * beta * (1.0 + r2)) / (
                2.0 * (1.0 + 3.0 * beta) * np.log(3.0 + 1.0 / xi) - r2 - 2.0 * beta * (2.0 - r2))
            ym = (4.0 + r2 + 3.0 * beta * (1.0 + r2)) / (
                (1.0 + r2) * (1.5 + 2.0 * beta) * np.log(3.0 + xi) + 1.0 - 1.5 * r2)
            le = (np.log(bz * np.sqrt((1.0 + xi) * (1.0 + ye))
                         / (1.0 + 2.0 * _ME * SQRT_E * bz * (1.0 + xi) * (1.0 + ye) / (E * vv * one_r2)))
                  - 0.5 * np.log(1.0 + (1.5 * _ME / _M * z13) ** 2 * (1.0 + xi) * (1.0 + ye)))
            lm = (np.log(_M / _ME * bz * np.sqrt((1.0 + 1.0 / xi) * (1.0 + ym))
                         / (1.0 + 2.0 * _ME * SQRT_E * bz * (1.0 + xi) * (1.0 + ym) / (E * vv * one_r2)))
                  - np.log(1.5 * z13 * np.sqrt((1.0 + 1.0 / xi) * (1.0 + ym))))
            phi_e = (((2.0 + r2) * (1.0 + beta) + xi * (3.0 + r2)) * np.log(1.0 + 1.0 / xi)
                     + (1.0 - r2 - beta) / (1.0 + xi) - (3.0 + r2)) * le
            phi_m = (((1.0 + r2) * (1.0 + 1.5 * beta) - (1.0 + 2.0 * beta) * one_r2 / xi) * np.log(1.0 + xi)
                     + xi * (1.0 - r2 - beta) / (1.0 + xi) + (1.0 + 2.0 * beta) * one_r2) * lm
            f = np.clip(phi_e, 0.0, None) + (_ME / _M) ** 2 * np.clip(phi_m, 0.0, None)
            total += w * a * np.nan_to_num(f)
        integral = -t_min * total  # d rho = -(1 - rho) dt
        zeta = _pair_zeta(E, Z)
        out = (4.0 / (3.0 * np.pi) * Z * (Z + zeta) * (ALPHA * ELECTRON_RADIUS) ** 2
               * (1.0 - vv) / vv * integral * AVOGADRO / A)
    return np.where(ok & np.isfinite(out), out, 0.0)


def photonuclear_dsigma_dv(E, v, mat: Material) -> np.ndarray:
    """Photonuclear (Bezrukov-Bugaev) dsigma/dv [cm2/g]."""
    E, v = np.broadcast_arrays(np.asarray(E, float), np.asarray(v, float))
    A = mat.A
    vmin, vmax = v_range("photonuclear", E, mat)
    ok = (v > vmin) & (v < vmax)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = v * E
        sigma_ub = 114.3 + 1.647 * np.log(0.0213 * eps) ** 2
        x = 0.00282 * A ** (1.0 / 3.0) * sigma_ub
        g = 3.0 / x**3 * (0.5 * x**2 - 1.0 + np.exp(-x) * (1.0 + x)) if mat.Z > 1.5 else 1.0
        t = _M**2 * v**2 / (1.0 - v)
        kappa = 1.0 - 2.0 / v + 2.0 / v**2
        m1, m2 = 0.54, 1.80  # GeV^2
        bracket = (0.75 * g * (kappa * np.log(1.0 + m1 / t) - kappa * m1 / (m1 + t) - 2.0 * _M**2 / t)
                   + 0.25 * (kappa * np.log(1.0 + m2 / t) - 2.0 * _M**2 / t)
                   + _M**2 / (2.0 * t) * (0.75 * g * m1 / (m1 + t) + 0.25 * m2 / t * np.log(1.0 + t / m2)))
        out = ALPHA / (2.0 * np.pi) * A * sigma_ub * 1e-30 * v * bracket * AVOGADRO / A
    return np.where(ok & np.isfinite(out) & (out > 0), out, 0.0)


#: Process name -> differential cross section.
PROCESSES = {"brems": brems_dsigma_dv, "pair": pair_dsigma_dv, "photonuclear": photonuclear_dsigma_dv}
