"""The mechanics every transport shares: helix, scattering kick, Highland width, rough dE/dx.

All functions work on per-component tensors (one element per muon) in any float
precision and on any device; units cm, GeV/c, tesla, rad.

* `helix`: the exact helix of a step in a uniform field B: the direction rotates
  about b = B/|B| by -k L with k = C_LIGHT q |B| / p (du/ds = k u x b);
* `kick`: deflect directions by projected angles and shift positions in the
  transverse frame e1 ~ y x u, e2 = u x e1 (e1 ~ x, e2 ~ y for a muon along z);
* `scattering_sigma`: the width of the Gaussian core of multiple scattering over a
  step of t radiation lengths, F x 13.6 MeV / (p beta) sqrt(t): Highland's sqrt(t)
  term (PDG review, eq. 34.15) times a constant F (`SCATTERING_CORE_FACTOR`) in place
  of its logarithm, so that the variances of successive steps add (steps are
  independent, as in Geant4).  Highland's formula is quoted for 1e-3 < t < 100;
  carried cumulatively over the shield's hundreds to thousands of radiation lengths,
  as the transports did before, its log term made the core 6-13 % wider than Geant4's
  (WentzelVI with single scattering), which set the transverse spread at the shield end
  about 10 % too wide.  F is Geant4's core in thick iron (1-20 m, 30 and 300 GeV/c;
  README); every muon starts in the 43 X0 tungsten target, so the thin-layer regime
  where Highland's log matters (t of a few X0 or less) does not arise;
* `rough_dedx`: a rough iron-like stopping power a + b E [GeV cm2/g] used only for
  step control (never for the physics).
"""

from __future__ import annotations

import numpy as np
import torch

from shipfastsim.units import C_LIGHT

__all__ = ["HIGHLAND_P0", "SCATTERING_CORE_FACTOR", "ROUGH_DEDX", "helix", "kick", "scattering_sigma", "rough_dedx"]

#: Highland's 13.6 MeV [GeV].  The fast-shield step tables store angles in units of
#: `scattering_sigma`: changing it or `SCATTERING_CORE_FACTOR` means bumping
#: ``plugins.reference.physics.PHYSICS_REVISION`` (hashed into the tables) and rebuilding them.
HIGHLAND_P0 = 0.0136
#: F of `scattering_sigma`: the Gaussian core of Geant4's multiple scattering of muons in
#: 1-20 m of iron is 1.09-1.12 times Highland's sqrt(t) term alone (geant4-shield; README);
#: the reference's single-scattering tail widens its core by 1-2 % more.
SCATTERING_CORE_FACTOR = 1.09
#: (a [GeV cm2/g], b [cm2/g]) of the step-control stopping power a + b E.
ROUGH_DEDX = (2.5e-3, 8e-6)


def rough_dedx(energy):
    """Rough mean stopping power [GeV cm2/g] at total energy E [GeV] (step control only)."""
    return ROUGH_DEDX[0] + ROUGH_DEDX[1] * energy


def scattering_sigma(p, energy, t_step):
    """Projected width [rad] of the Gaussian core of multiple scattering over ``t_step``
    radiation lengths for momentum p [GeV/c] and total energy E [GeV] (p beta = p^2 / E):
    F x 13.6 MeV / (p beta) sqrt(t).  Tensors, numpy arrays or floats."""
    if isinstance(p, torch.Tensor):
        return (SCATTERING_CORE_FACTOR * HIGHLAND_P0) / (p * p / energy).clamp_min(1e-12) * torch.sqrt(t_step)
    return SCATTERING_CORE_FACTOR * HIGHLAND_P0 * energy / (p * p) * np.sqrt(t_step)


def helix(x, y, z, ux, uy, uz, p, q, bx, by, bz, length):
    """Move positions [cm] and unit directions along the exact helix of ``length`` [cm]
    in the uniform field (bx, by, bz) [T] (``bz`` may be None: no Bz) for momentum p
    [GeV/c] and charge q [e].  Returns the new x, y, z, ux, uy, uz and |B|.

    Branch-free (no masks, no ``where``, which is slow on the CPU): sin(phi)/phi and
    (1 - cos phi)/phi = 2 sin^2(phi/2)/phi, exact at phi = 0 (no field) and free of the
    cancellation of 1 - cos phi at small phi."""
    b2 = bx * bx + by * by
    if bz is not None:
        b2 = b2 + bz * bz
    b = torch.sqrt(b2)
    inv = 1.0 / b.clamp_min(1e-30)  # B = 0 gives n = 0: a straight line
    nx, ny = bx * inv, by * inv
    phi = (C_LIGHT * length) * q * b / p
    if bz is None:  # b_z = 0
        u_par = ux * nx + uy * ny  # component along b
        px_, py_, pz_ = ux - u_par * nx, uy - u_par * ny, uz  # perpendicular part
        cx, cy, cz = ny * pz_, -nx * pz_, nx * py_ - ny * px_  # b x u_perp
        par_z = None
    else:
        nz = bz * inv
        u_par = ux * nx + uy * ny + uz * nz
        px_, py_, pz_ = ux - u_par * nx, uy - u_par * ny, uz - u_par * nz
        cx, cy, cz = ny * pz_ - nz * py_, nz * px_ - nx * pz_, nx * py_ - ny * px_
        par_z = u_par * nz
    cos, sin, sin_half = torch.cos(phi), torch.sin(phi), torch.sin(0.5 * phi)
    zero = torch.eq(phi, 0.0).view(torch.uint8).to(phi.dtype)  # 1 where phi = 0
    scale = length / (phi + zero)
    s_l = (sin + zero) * scale  # sin(phi) / k, and L at phi = 0
    c_l = 2.0 * sin_half * sin_half * scale  # (1 - cos phi) / k
    par_x, par_y = u_par * nx, u_par * ny
    x = x + par_x * length + px_ * s_l - cx * c_l
    y = y + par_y * length + py_ * s_l - cy * c_l
    z = z + pz_ * s_l - cz * c_l if par_z is None else z + par_z * length + pz_ * s_l - cz * c_l
    ux, uy = par_x + px_ * cos - cx * sin, par_y + py_ * cos - cy * sin
    uz = pz_ * cos - cz * sin if par_z is None else par_z + pz_ * cos - cz * sin
    return x, y, z, ux, uy, uz, b


def kick(x, y, z, ux, uy, uz, tx, ty, dx, dy):
    """Deflect unit directions by projected angles (tx, ty) [rad] (exact for the space
    angle) and shift positions by (dx, dy) [cm], both in the frame e1 ~ y x u,
    e2 = u x e1.  Returns x, y, z, ux, uy, uz (directions renormalised).  A muon
    exactly along y (never in practice: transports stop muons with uz <= 0) would
    get e1 = 0, i.e. no deflection in that step."""
    inv = torch.rsqrt((uz * uz + ux * ux).clamp_min(1e-24))
    e1x, e1z = uz * inv, -ux * inv
    e2x, e2y, e2z = uy * e1z, uz * e1x - ux * e1z, -uy * e1x  # u x e1 (e1y = 0)
    x = x + e1x * dx + e2x * dy
    y = y + e2y * dy
    z = z + e1z * dx + e2z * dy
    theta = torch.sqrt(tx * tx + ty * ty)
    zero = torch.eq(theta, 0.0).view(torch.uint8).to(theta.dtype)
    cos, sin_over = torch.cos(theta), (torch.sin(theta) + zero) / (theta + zero)  # sin(theta) / theta
    ux = ux * cos + (e1x * tx + e2x * ty) * sin_over
    uy = uy * cos + e2y * ty * sin_over
    uz = uz * cos + (e1z * tx + e2z * ty) * sin_over
    inv = torch.rsqrt(ux * ux + uy * uy + uz * uz)
    return x, y, z, ux * inv, uy * inv, uz * inv
