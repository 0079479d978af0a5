"""What every shield transport shares: step settings, the result, the stop reasons.

The stepping itself is one compiled kernel (`kernel`, run by `kernel_transport.
KernelTransport`) whose step sampler is the only part that differs between
``fast-shield`` (step tables) and ``reference-shield`` (detailed physics).  Per step:

1. step length L [cm]: ``dense_step`` in dense matter or inside the z range of the
   target, a block or the magnets (longer inside a magnet, up to ``long_step``, as
   far as the lateral safety allows), ``air_step`` elsewhere; shortened so that a muon
   loses at most ``loss_fraction`` of E (`mechanics.rough_dedx`), bends by at most
   ``max_bend`` rad, and ends just past the next z boundary of the geometry (magnet
   faces, recording planes).  The material and field that control the step are those
   at its start (``control="start"``, one more lookup) or of the previous step's
   midpoint (``"previous"``);
2. material and field at the straight-line midpoint (`geometry.kernel.query_point`);
3. energy loss, scattering angles and lateral displacement from the sampler;
4. exact helix in the midpoint field (`mechanics.helix_step`) with the momentum at
   mid-step (E - loss/2), then the scattering kick (`mechanics.kick_step`);
5. record the muons crossing each plane (state straight back on the plane, aperture
   flag); stop muons below ``min_momentum``, outside the world box, moving backwards
   or past the last plane (`STOP_REASONS`).

Units: cm, GeV/c, tesla; FairShip's frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["StepSettings", "TransportResult", "STOP_REASONS"]

#: ``TransportResult.stop_reason`` codes.
STOP_REASONS = {0: "passed_last_plane", 1: "stopped", 2: "left_world", 3: "backward", 4: "world_end",
                5: "step_limit"}


@dataclass(frozen=True)
class StepSettings:
    """Step control [cm, rad], stopping momentum [GeV/c] and where the step is
    controlled from (``"start"`` or ``"previous"``).

    ``long_step`` (None: off) is the longest step inside a magnet's z range: there a
    muon steps as far as its straight path, widened by its bending sagitta, the taper
    of the magnet's edges and `kernel.LATERAL_MARGIN`, cannot reach a lateral edge of
    the magnet's cross-section or, beside or above the magnet (no field there unless a
    field map gives one), its outer envelope or a wall of the cavern and blocks (the
    safeties of `geometry.kernel.query_point` at the previous midpoint,
    `kernel._safe_reach`), up to ``long_step``: inside that reach material and field
    are uniform, and a longer step is as exact.  Never shorter than ``dense_step`` for it: near the edges the
    step stays ``dense_step``."""

    dense_step: float = 10.0
    air_step: float = 50.0
    loss_fraction: float = 0.05
    max_bend: float = 0.02
    min_momentum: float = 0.5
    control: str = "start"
    long_step: float | None = None


@dataclass
class TransportResult:
    """Per recording plane and input muon: whether it reached the plane, its state
    there (x, y, z, px, py, pz) [cm, GeV/c] (NaN if not), whether it was inside the
    plane's aperture (planes with one); why each muon's transport ended
    (`STOP_REASONS`), the most steps a muon of the chunk took and (compiled kernel)
    the steps of each muon."""

    reached: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    in_aperture: dict[str, torch.Tensor] = field(default_factory=dict)
    stop_reason: torch.Tensor | None = None
    steps: int = 0
    steps_per_muon: torch.Tensor | None = None
