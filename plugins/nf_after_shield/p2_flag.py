"""nf-decay-vessel with the P2 flag as a condition: P1 and P2 muons from one flow, each region exact.

P2 (the straight track from the entrance also leaves through the exit aperture) is a
subset of P1 bounded by the planes |x_e + tx L| = exit_half_x and |y_e + ty L| =
exit_half_y, diagonal in the flow's coordinates, which a flow conditioned on the charge
alone smears (docs/physics/nf-decay-vessel.md: P2 two-sample AUC 0.56 on the independent runs).  A flow
trained with ``FlowConfig.contexts = 2`` is conditioned on the charge and on the P2 flag
(+1 in P2, -1 in P1 outside P2; `train.prepare`): one network learns both regions from
all the P1 rows.  Sampling then draws

1. the charge with the trained mu+ fraction, and the flag with the P2 share of that
   charge among the training P1 muons (model JSON, ``p2_share_by_charge``);
2. the muon from the flow given both, redrawn (`redraw_rejected`) until its geometric
   label (`DecayVessel.labels`) is the flag's: the flow restricted to its region, exactly.

So the P2 share is the transported one and no muon of either region lies in the other.
Units: cm, GeV/c.
"""

from __future__ import annotations

import torch
from torch import nn

from shipfastsim.geometry.decay_vessel import DecayVessel
from shipfastsim.plugins.gan_target import above_beam, redraw_rejected, run_chunked
from shipfastsim.plugins.nf_after_shield.entrance_box import from_entrance_box
from shipfastsim.plugins.nf_after_shield.model import DIM, MuonFlow

__all__ = ["FlaggedNoiseToMuon", "sample_flagged"]


class FlaggedNoiseToMuon(nn.Module):
    """Input [n, 7] (5 standard normals, the charge +-1, the P2 flag +-1) -> muons [n, 8]
    (u_x, u_y, z [cm], px, py, pz [GeV/c], PDG id, weight 1), u_x and u_y in the flow's
    entrance-box coordinates (`entrance_box.from_entrance_box` maps them back)."""

    def __init__(self, flow: MuonFlow):
        super().__init__()
        if flow.config.contexts != 2:
            raise ValueError(f"a flow conditioned on the P2 flag has FlowConfig.contexts 2, not {flow.config.contexts}")
        self.flow = flow

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        eps, conditions = noise[:, :DIM], noise[:, DIM:DIM + 2]
        state = self.flow.sample_physics(eps, conditions)
        charge = conditions[:, :1]
        z = torch.full_like(charge, self.flow.config.z_plane)
        return torch.cat([state[:, 0:2], z, state[:, 2:5], -13.0 * charge, torch.ones_like(charge)], 1)


def sample_flagged(engine: FlaggedNoiseToMuon, n_muons: int, generator: torch.Generator, p2_share: dict[str, float],
                   vessel: DecayVessel, device: torch.device, drawn_share: float | dict[str, float] = 0.0
                   ) -> torch.Tensor:
    """Rows [n, 8] (x, y, z [cm] at the flow's plane, px, py, pz [GeV/c], PDG id, weight;
    float64) of ``n_muons`` P1 muons (module docstring); ``p2_share`` s by charge ("mu-", "mu+").

    ``drawn_share`` r > 0 (a number, or one per charge like ``p2_share``) draws the flag
    with probability r instead of s, and the exact weights s / r (P2) and (1 - s) / (1 - r)
    (the rest) restore every weighted total; r = 1 makes P2 muons only, each of weight s.
    With r = 0 the weights are 1.
    The random numbers: two uniforms per muon (charge, flag), then its normals, then the
    redraws; a function of the generator's state."""
    flow = engine.flow
    z_plane = flow.config.z_plane
    choice = torch.rand(n_muons, 2, generator=generator, device=generator.device, dtype=torch.float64)
    plus = choice[:, 0] < flow.config.fraction_mu_plus
    share = torch.where(plus, choice.new_tensor(p2_share["mu+"]), choice.new_tensor(p2_share["mu-"]))  # float64
    if isinstance(drawn_share, dict):
        drawn = torch.where(plus, choice.new_tensor(drawn_share["mu+"]), choice.new_tensor(drawn_share["mu-"]))
    else:
        drawn = torch.full_like(share, drawn_share) if drawn_share else share
    flag = choice[:, 1] < drawn
    conditions = torch.stack([torch.where(plus, 1.0, -1.0), torch.where(flag, 1.0, -1.0)], 1).float()

    def make(rows: torch.Tensor) -> torch.Tensor:
        """Muons of the conditions of ``rows`` (indices), the flag (0, 1) in the weight column."""
        eps = torch.randn(len(rows), DIM, generator=generator, device=generator.device)
        noise = torch.cat([eps, conditions[rows].to(eps.device)], 1).to(device)
        with torch.no_grad():  # not inference_mode: the rows are edited below
            muons = run_chunked(engine, noise).double()
        muons[:, 2] = z_plane  # exact, not the graph's float32
        muons[:, 0], muons[:, 1] = from_entrance_box(muons[:, 0], muons[:, 1], muons[:, 3], muons[:, 4],
                                                     muons[:, 5], vessel, z_plane)
        muons[:, 7] = flag[rows].to(device).double()
        return muons

    def rejected(muons: torch.Tensor) -> torch.Tensor:
        label = vessel.labels(muons[:, 0], muons[:, 1], muons[:, 2], muons[:, 3], muons[:, 4], muons[:, 5])
        return (label.to(muons.device) != 1 + muons[:, 7].long()) | above_beam(muons)

    every = torch.arange(n_muons, device=generator.device)
    out = redraw_rejected(make(every), make, rejected, what="outside the region of their P2 flag", by_row=True)
    if drawn_share:  # (1 - s) / (1 - r) is never taken at r = 1: no muon is outside P2 there
        rest = (1.0 - share) / (1.0 - drawn).clamp_min(1e-300)
        out[:, 7] = torch.where(flag, share / drawn, rest).to(device)
    else:
        out[:, 7] = 1.0
    return out
