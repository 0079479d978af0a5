"""The coordinates of ``nf-decay-vessel``: the decay-vessel entrance box as the flow's whole space.

P1 is the box |x_e| <= entrance_half_x, |y_e| <= entrance_half_y at the vessel entrance,
x_e = x + (px / pz) dz with dz = z_entrance - z_plane (straight tracks).  The flow works on
u_x = atanh(x_e / entrance_half_x), u_y = atanh(y_e / entrance_half_y) in place of x and y
(`to_entrance_box`), so every muon it makes enters the vessel; `from_entrance_box` maps
its output back to x, y at the shield end.  Units: cm, GeV/c.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from shipfastsim.geometry.decay_vessel import DecayVessel

__all__ = ["to_entrance_box", "from_entrance_box"]

#: The box of the flow's u coordinates is the aperture shrunk by this factor (2 um of the
#: 50 cm half-width), so that the float32 rounding of the FairShip ntuple (x, y in metres:
#: half an ulp is at most 5e-5 cm below 10 m) never puts a muon a hair outside the aperture
#: (4 of 500,000 were with 1 - 1e-9); |x_e| / the shrunk half-width is kept below it before
#: atanh, whose value at 1 is infinite.
_EDGE = 1.0 - 4e-6


def to_entrance_box(state: np.ndarray, vessel: DecayVessel, z_plane: float) -> np.ndarray:
    """Rows (x, y, px, py, pz, charge) at ``z_plane`` [cm] with x, y replaced by u_x, u_y
    (module docstring, with the half-widths shrunk by `_EDGE`); the rows must be P1 muons
    (|x_e|, |y_e| inside the aperture)."""
    import numpy as np

    out = np.array(state, dtype=np.float64, copy=True)
    dz = vessel.z_entrance - z_plane
    for j, half in ((0, vessel.entrance_half_x), (1, vessel.entrance_half_y)):
        entrance = (out[:, j] + out[:, 2 + j] / out[:, 4] * dz) / (half * _EDGE)
        out[:, j] = np.arctanh(np.clip(entrance, -_EDGE, _EDGE))
    return out


def from_entrance_box(u_x: torch.Tensor, u_y: torch.Tensor, px: torch.Tensor, py: torch.Tensor, pz: torch.Tensor,
                      vessel: DecayVessel, z_plane: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y [cm] at ``z_plane`` from u_x, u_y and the momentum [GeV/c] (inverse of `to_entrance_box`)."""
    import torch

    dz = vessel.z_entrance - z_plane
    x = vessel.entrance_half_x * _EDGE * torch.tanh(u_x) - px / pz * dz
    y = vessel.entrance_half_y * _EDGE * torch.tanh(u_y) - py / pz * dz
    return x, y
