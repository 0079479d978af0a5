"""Helix steps in piecewise-uniform magnetic fields, and direction updates.

In a uniform field B the direction u of a muon of charge q and momentum p rotates
about b = B/|B| with du/ds = k u x b, k = 0.299792458e-2 q |B| / p [1/cm] (B in T,
p in GeV, s in cm); the step below is the exact helix, so bending is exact inside
one field region.  The stepper limits the step so that the bending angle per step
stays below a bound (regions are found at the step's midpoint) - see
`shipfastsim.plugins.reference.transport`.
"""

from __future__ import annotations

import torch

from shipfastsim.units import C_LIGHT

__all__ = ["C_LIGHT", "helix_step", "rotate_direction", "transverse_basis"]


def helix_step(pos: torch.Tensor, u: torch.Tensor, p: torch.Tensor, q: torch.Tensor, B: torch.Tensor,
               L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move (N, 3) positions [cm] and unit directions along exact helices of length L [cm].

    Args:
        pos, u: (N, 3) positions and unit directions.
        p: momentum [GeV]; q: charge [e]; B: (N, 3) field [T]; L: step lengths [cm].
    """
    b_mag = torch.linalg.norm(B, dim=1)
    k = C_LIGHT * q * b_mag / p  # signed curvature [1/cm]
    safe = b_mag > 0
    b = torch.where(safe[:, None], B / torch.where(safe, b_mag, 1.0)[:, None], torch.zeros_like(B))
    u_par = (u * b).sum(1, keepdim=True) * b
    u_perp = u - u_par
    b_cross = torch.linalg.cross(b, u_perp)  # b x u_perp
    phi = k * L
    # du/ds = k u x b = -k b x u: rotation about b by -k s.
    cos, sin = torch.cos(phi), torch.sin(phi)
    small = phi.abs() < 1e-6
    k_safe = torch.where(small, 1.0, k)
    s_over_k = torch.where(small, L * (1.0 - phi**2 / 6.0), sin / k_safe)
    c_over_k = torch.where(small, L * phi / 2.0, (1.0 - cos) / k_safe)
    new_pos = pos + u_par * L[:, None] + u_perp * s_over_k[:, None] - b_cross * c_over_k[:, None]
    new_u = u_par + u_perp * cos[:, None] - b_cross * sin[:, None]
    return new_pos, new_u / torch.linalg.norm(new_u, dim=1, keepdim=True)


def transverse_basis(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors (N, 3) orthogonal to u; e1 ~ x and e2 ~ y for u ~ z."""
    y_axis = torch.zeros_like(u)
    y_axis[:, 1] = 1.0
    e1 = torch.linalg.cross(y_axis, u)
    norm = torch.linalg.norm(e1, dim=1, keepdim=True)
    # A muon along y (never in practice) gets x as its first axis.
    fallback = torch.zeros_like(u)
    fallback[:, 0] = 1.0
    e1 = torch.where(norm > 1e-12, e1 / norm.clamp_min(1e-12), fallback)
    e2 = torch.linalg.cross(u, e1)
    return e1, e2


def rotate_direction(u: torch.Tensor, theta_x: torch.Tensor, theta_y: torch.Tensor) -> torch.Tensor:
    """Deflect unit directions by projected angles (theta_x, theta_y) [rad] in the
    transverse frame of `transverse_basis` (exact for the space angle)."""
    e1, e2 = transverse_basis(u)
    theta = torch.sqrt(theta_x**2 + theta_y**2)
    safe = torch.where(theta > 0, theta, 1.0)
    sin_over = torch.where(theta > 0, torch.sin(theta) / safe, 1.0)
    new_u = u * torch.cos(theta)[:, None] + (e1 * theta_x[:, None] + e2 * theta_y[:, None]) * sin_over[:, None]
    return new_u / torch.linalg.norm(new_u, dim=1, keepdim=True)
