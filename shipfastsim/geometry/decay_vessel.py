"""The nested "dangerous" subsets P0 > P1 > P2 of muons, defined by the decay vessel.

The structured normalising flow (`nf-after-shield`) and the decay-vessel filters
label every muon with the deepest subset it belongs to:

* **P0** (label 0 or more): every muon, wherever it is;
* **P1** (label 1 or more): its straight track crosses the decay-vessel entrance plane
  inside the entrance aperture, ``|x| <= entrance_half_x`` and ``|y| <= entrance_half_y``;
* **P2** (label 2): P1, and the straight track from the entrance stays inside the
  vessel to its downstream end.

The vessel's inner volume is a pyramidal frustum whose half-widths grow linearly in
z from the entrance to the exit (FairShip's helium vessel, see the ``decay_vessel``
section of ``configs/geometry/ship_try2026.yaml`` and its sources).  A straight track
has x linear in z, so ``|x(z)| - half_x(z)`` is convex in z and its maximum over the
vessel is at one of the two ends: "inside all the way" is exactly "inside at the
entrance and inside at the exit", which is what `DecayVessel.labels` tests.

The downstream track is straight because there is no field in the vessel (helium,
no magnet before the spectrometer).  States given upstream of the entrance are
extrapolated in a straight line too; the transports deliver the muons at the
entrance plane itself (``decay_vessel`` recording plane), so the training labels use
no extrapolation before the entrance.  Lengths in cm, momenta in GeV/c.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shipfastsim.batch import MuonBatch
from shipfastsim.geometry.model import GeometryError, ShieldGeometry

__all__ = ["SUBSET_NAMES", "DecayVessel", "subset_labels"]

#: Name of each label value.
SUBSET_NAMES = ("P0", "P1", "P2")

# States recorded "at" the entrance plane may carry float32 round-off in z [cm].
_Z_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DecayVessel:
    """Entrance and exit of the decay vessel (z and half-widths in cm, centred on the beam)."""

    z_entrance: float
    entrance_half_x: float
    entrance_half_y: float
    z_exit: float
    exit_half_x: float
    exit_half_y: float

    @classmethod
    def from_geometry(cls, geometry: ShieldGeometry) -> DecayVessel:
        """The vessel of a geometry with a ``decay_vessel`` section (its entrance is the
        named recording plane, whose z and aperture are used)."""
        section = geometry.decay_vessel
        if section is None:
            raise GeometryError(f"geometry {geometry.name!r} has no decay_vessel section "
                                "(plane, length, exit_half_x, exit_half_y)")
        plane = geometry.plane(section.plane)
        return cls(z_entrance=plane.z, entrance_half_x=float(plane.aperture_half_x),
                   entrance_half_y=float(plane.aperture_half_y), z_exit=plane.z + section.length,
                   exit_half_x=section.exit_half_x, exit_half_y=section.exit_half_y)

    def half_widths(self, z: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Inner half-widths (x, y) [cm] at z (linear between entrance and exit)."""
        f = (torch.as_tensor(z, dtype=torch.float64) - self.z_entrance) / (self.z_exit - self.z_entrance)
        return (self.entrance_half_x + f * (self.exit_half_x - self.entrance_half_x),
                self.entrance_half_y + f * (self.exit_half_y - self.entrance_half_y))

    def labels(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
               px: torch.Tensor, py: torch.Tensor, pz: torch.Tensor) -> torch.Tensor:
        """Deepest subset (0, 1 or 2, int64) of each state; z at or before the entrance.

        Muons moving backwards (pz <= 0) never reach the vessel: label 0.
        """
        x, y, z, px, py, pz = (torch.as_tensor(v, dtype=torch.float64) for v in (x, y, z, px, py, pz))
        if z.numel() and float(z.max()) > self.z_entrance + _Z_TOLERANCE:
            raise ValueError(f"decay-vessel labels need states at or before the entrance z = {self.z_entrance} cm; "
                             f"got z up to {float(z.max())} cm")
        forward = pz > 0
        safe_pz = torch.where(forward, pz, torch.ones_like(pz))
        tx, ty = px / safe_pz, py / safe_pz
        to_entrance = (self.z_entrance - z).clamp(min=0.0)
        x0, y0 = x + tx * to_entrance, y + ty * to_entrance
        p1 = forward & (x0.abs() <= self.entrance_half_x) & (y0.abs() <= self.entrance_half_y)
        length = self.z_exit - self.z_entrance
        x1, y1 = x0 + tx * length, y0 + ty * length
        p2 = p1 & (x1.abs() <= self.exit_half_x) & (y1.abs() <= self.exit_half_y)
        return p1.to(torch.int64) + p2.to(torch.int64)


def subset_labels(batch: MuonBatch, vessel: DecayVessel) -> torch.Tensor:
    """`DecayVessel.labels` of every muon of a batch (int64 tensor on the batch's device)."""
    return vessel.labels(batch.x, batch.y, batch.z, batch.px, batch.py, batch.pz).to(batch.device)
