"""Multiple Coulomb scattering: Gaussian core (Highland) plus a single-scattering tail.

Per step of length L the projected angles are the sum of

* a Gaussian core of width `mechanics.scattering_sigma` (Highland's sqrt(t) term times
  a constant set against Geant4's core in thick iron; the variances of steps add);
* hard single scatterings off nuclei: screened Rutherford, Z(Z+1) for the atomic
  electrons, above theta_c = ``tail_factor`` x the step's core width, thinned by a
  Gaussian nuclear form factor exp(-theta^2 / (3 theta_N^2)), theta_N = hbar c/(p R),
  R = 1.2 A^(1/3) fm.  The Gaussian core is the multiple-scattering below theta_c;
  the tail reproduces the large-angle (Moliere) excess that a single Gaussian misses.

The lateral displacement goes with each component: for the core the correlated
(z1/sqrt(12) + z2/2) L theta0 of the PDG review, for a hard scatter at depth s in
the step (L - s) theta.  Angles in rad, lengths in cm, momenta in GeV.
"""

from __future__ import annotations

import math

import torch

from shipfastsim.geometry.materials import Material
from shipfastsim.plugins.reference.cross_sections import AVOGADRO, ELECTRON_MASS, ELECTRON_RADIUS
from shipfastsim.plugins.reference.energy_loss import expand_counts
from shipfastsim.transport.mechanics import scattering_sigma

__all__ = ["sample_scattering"]

_HBARC = 0.1973269804e-13  # GeV cm


def sample_scattering(mat: Material, density_scale: torch.Tensor | float, p: torch.Tensor, beta: torch.Tensor,
                      L: torch.Tensor, generator: torch.Generator, tail_factor: float = 2.5):
    """Sample projected angles and lateral displacements for one step.

    Args:
        mat: material of the step; density_scale multiplies its density.
        p, beta: momentum [GeV] and velocity of each muon; L: step length [cm].
        generator: the random stream.
        tail_factor: hard scatters are sampled above tail_factor x core width.

    Returns:
        (theta_x, theta_y, dx, dy): projected angles [rad] and displacements [cm]
        in the muon's transverse frame.
    """
    dtype, dev = p.dtype, p.device
    n = p.shape[0]
    rho = mat.density * torch.as_tensor(density_scale, dtype=dtype, device=dev)
    t_step = L * rho / mat.radiation_length
    sigma = scattering_sigma(p, p / beta, t_step)
    z = torch.randn((4, n), generator=generator, dtype=dtype, device=dev)
    theta_x, theta_y = z[0] * sigma, z[1] * sigma
    dx = L * sigma * (z[2] / math.sqrt(12.0) + z[0] / 2.0)
    dy = L * sigma * (z[3] / math.sqrt(12.0) + z[1] / 2.0)

    # Hard single scatters above theta_c (space angle), screened Rutherford.
    theta_c = tail_factor * sigma * math.sqrt(2.0)
    theta_a2 = (ELECTRON_MASS / 137.036 * 0.885 ** -1 * mat.Z ** (1.0 / 3.0) / p) ** 2  # Thomas-Fermi screening
    atoms = AVOGADRO * rho / mat.A
    k = 4.0 * math.pi * mat.Z * (mat.Z + 1.0) * (ELECTRON_RADIUS * ELECTRON_MASS / (p * beta)) ** 2
    expected = atoms * L * k / (theta_c**2 + theta_a2)
    counts = torch.poisson(expected, generator=generator)
    if counts.sum() > 0:
        owner = expand_counts(counts.long())
        m = owner.numel()
        u = torch.rand((4, m), generator=generator, dtype=dtype, device=dev)
        # 1/(theta^2 + theta_a^2) is uniform in (0, 1/(theta_c^2 + theta_a^2)].
        inv = u[0] / (theta_c[owner] ** 2 + theta_a2[owner])
        theta2 = (1.0 / inv.clamp_min(1e-300) - theta_a2[owner]).clamp_min(0.0)
        theta_n = _HBARC / (p[owner] * 1.2e-13 * mat.A ** (1.0 / 3.0))
        keep = (u[1] < torch.exp(-theta2 / (3.0 * theta_n**2))) & (theta2 < 1.0)
        theta = torch.sqrt(theta2) * keep
        phi = 2.0 * math.pi * u[2]
        tx, ty = theta * torch.cos(phi), theta * torch.sin(phi)
        lever = L[owner] * (1.0 - u[3])  # scatter at depth u3 L, displacement to the step end
        theta_x = theta_x.index_add(0, owner, tx)
        theta_y = theta_y.index_add(0, owner, ty)
        dx = dx.index_add(0, owner, lever * tx)
        dy = dy.index_add(0, owner, lever * ty)
    return theta_x, theta_y, dx, dy
