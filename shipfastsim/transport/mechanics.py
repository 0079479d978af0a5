"""The mechanics every transport shares: helix, scattering kick, Highland width, rough dE/dx.

Each mechanism is written once, as scalar code for one muon (`helix_step`,
`kick_step`, `scattering_sigma`, `rough_dedx`), which the compiled transport kernel
(`shipfastsim.transport.kernel`) inlines for the CPU and CUDA for every transport.
`scattering_sigma` and `rough_dedx` also take tensors or numpy arrays (the table
builders).  Units cm, GeV/c, tesla, rad.

* `helix_step`: the exact helix of a step in a uniform field B: the direction rotates
  about b = B/|B| by -k L with k = C_LIGHT q |B| / p (du/ds = k u x b);
* `kick_step`: deflect directions by projected angles and shift positions in the
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
  step control (never for the physics);
* `sin_cos` and `azimuth`: sines and cosines by short Taylor series where those are exact
  to the last bits (small angles; an azimuth reduced to its octant), with multiplications
  only: the library calls, or series with divisions, were a third of a step's time.
"""

from __future__ import annotations

import math

from shipfastsim.transport.jit import jitable
from shipfastsim.units import C_LIGHT

__all__ = ["HIGHLAND_P0", "SCATTERING_CORE_FACTOR", "ROUGH_DEDX", "helix_step", "kick_step", "sin_cos",
           "azimuth", "scattering_sigma", "rough_dedx"]

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


@jitable
def rough_dedx(energy):
    """Rough mean stopping power [GeV cm2/g] at total energy E [GeV] (step control only)."""
    return ROUGH_DEDX[0] + ROUGH_DEDX[1] * energy


@jitable
def scattering_sigma(p, energy, t_step):
    """Projected width [rad] of the Gaussian core of multiple scattering over ``t_step``
    radiation lengths for momentum p [GeV/c] and total energy E [GeV] (p beta = p^2 / E):
    F x 13.6 MeV / (p beta) sqrt(t).  Scalars (in the kernel), tensors or numpy arrays."""
    return (SCATTERING_CORE_FACTOR * HIGHLAND_P0) * energy / (p * p) * t_step**0.5


#: Taylor coefficients (-1)^n / (2n+1)! of sin (n = 1..6) and (-1)^n / (2n)! of cos (n = 1..7):
#: multiplied, not divided (a division by a constant is not turned into a multiplication by
#: the compiler, and costs several times more).
_SIN = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(1, 7))
_COS = tuple((-1.0) ** n / math.factorial(2 * n) for n in range(1, 8))
#: cos and sin of the octants' middle angles (k + 1/2) pi / 4, k = 0..7 (`azimuth`).
_OCTANT_COS = tuple(math.cos((k + 0.5) * math.pi / 4.0) for k in range(8))
_OCTANT_SIN = tuple(math.sin((k + 0.5) * math.pi / 4.0) for k in range(8))


@jitable
def sin_cos(angle):
    """(sin, cos) of ``angle`` [rad]; below 0.2 rad (nearly every step's bending and
    scattering angle) by their Taylor series to the 9th and 10th power, exact to 3e-15
    relative (at 0.2 rad; far better below) and several times cheaper than the library calls."""
    if abs(angle) >= 0.2:
        return math.sin(angle), math.cos(angle)
    a2 = angle * angle
    sin = angle + angle * a2 * (_SIN[0] + a2 * (_SIN[1] + a2 * (_SIN[2] + a2 * _SIN[3])))
    cos = 1.0 + a2 * (_COS[0] + a2 * (_COS[1] + a2 * (_COS[2] + a2 * (_COS[3] + a2 * _COS[4]))))
    return sin, cos


@jitable
def azimuth(u):
    """(cos, sin) of the azimuth 2 pi u [rad] of a uniform draw u in [0, 1): the octant's
    middle angle (constants) turned by the rest r, |r| <= pi/8, whose sine and cosine are
    their Taylor series to the 13th and 14th power (the next terms are below 1e-18).
    Agrees with the library calls to 1e-15 (their own rounding of 2 pi u) in a third of
    their time."""
    k = min(int(u * 8.0), 7)
    r = 2.0 * math.pi * (u - (k + 0.5) * 0.125)
    r2 = r * r
    sin_r = r + r * r2 * (_SIN[0] + r2 * (_SIN[1] + r2 * (_SIN[2] + r2 * (_SIN[3] + r2 * (_SIN[4] + r2 * _SIN[5])))))
    cos_r = 1.0 + r2 * (_COS[0] + r2 * (_COS[1] + r2 * (_COS[2] + r2 * (_COS[3] + r2 * (_COS[4] + r2 * (
        _COS[5] + r2 * _COS[6]))))))
    cos_k, sin_k = _OCTANT_COS[k], _OCTANT_SIN[k]
    return cos_k * cos_r - sin_k * sin_r, sin_k * cos_r + cos_k * sin_r


@jitable
def helix_step(x, y, z, ux, uy, uz, p, q, bx, by, bz, length):
    """One muon along the exact helix of ``length`` [cm] in the uniform field
    (bx, by, bz) [T] for momentum p [GeV/c] and charge q [e]: returns the new
    x, y, z [cm], unit direction and |B| [T].

    The direction rotates about n = B/|B| by phi = -C q |B| L / p: its part along n is
    kept, its perpendicular part u_perp turns as u_perp cos(phi) - (n x u_perp) sin(phi),
    and the position moves by the integral of that: u_par n L + u_perp sin(phi)/k
    - (n x u_perp) (1 - cos phi)/k, with (1 - cos phi) written 2 sin^2(phi/2), free of
    cancellation at small phi.  No field (or no charge) is a straight line."""
    b = math.sqrt(bx * bx + by * by + bz * bz)
    phi = C_LIGHT * length * q * b / p
    if phi == 0.0:
        return x + ux * length, y + uy * length, z + uz * length, ux, uy, uz, b
    nx, ny, nz = bx / b, by / b, bz / b
    u_par = ux * nx + uy * ny + uz * nz
    px_, py_, pz_ = ux - u_par * nx, uy - u_par * ny, uz - u_par * nz  # perpendicular part
    cx, cy, cz = ny * pz_ - nz * py_, nz * px_ - nx * pz_, nx * py_ - ny * px_  # n x u_perp
    sin_half, cos_half = sin_cos(0.5 * phi)
    sin, cos = 2.0 * sin_half * cos_half, 1.0 - 2.0 * sin_half * sin_half
    s_l = sin / phi * length  # sin(phi) / k
    c_l = 2.0 * sin_half * sin_half / phi * length  # (1 - cos phi) / k
    x = x + u_par * nx * length + px_ * s_l - cx * c_l
    y = y + u_par * ny * length + py_ * s_l - cy * c_l
    z = z + u_par * nz * length + pz_ * s_l - cz * c_l
    return (x, y, z, u_par * nx + px_ * cos - cx * sin, u_par * ny + py_ * cos - cy * sin,
            u_par * nz + pz_ * cos - cz * sin, b)


@jitable
def kick_step(x, y, z, ux, uy, uz, tx, ty, dx, dy):
    """Deflect one muon's unit direction by projected angles (tx, ty) [rad] (exact for
    the space angle) and shift its position by (dx, dy) [cm], both in the frame
    e1 ~ y x u, e2 = u x e1 (e1 ~ x, e2 ~ y for a muon along z).  Returns x, y, z, ux,
    uy, uz (direction renormalised).  A muon exactly along y (never in practice:
    transports stop muons with uz <= 0) gets no deflection."""
    norm = math.sqrt(uz * uz + ux * ux)
    if norm < 1e-12:
        return x, y, z, ux, uy, uz
    e1x, e1z = uz / norm, -ux / norm
    e2x, e2y, e2z = uy * e1z, uz * e1x - ux * e1z, -uy * e1x  # u x e1 (e1y = 0)
    x = x + e1x * dx + e2x * dy
    y = y + e2y * dy
    z = z + e1z * dx + e2z * dy
    theta = math.sqrt(tx * tx + ty * ty)
    sin, cos = sin_cos(theta)
    sin_over = sin / theta if theta > 0.0 else 1.0  # sin(theta) / theta
    ux = ux * cos + (e1x * tx + e2x * ty) * sin_over
    uy = uy * cos + e2y * ty * sin_over
    uz = uz * cos + (e1z * tx + e2z * ty) * sin_over
    inv = 1.0 / math.sqrt(ux * ux + uy * uy + uz * uz)
    return x, y, z, ux * inv, uy * inv, uz * inv
