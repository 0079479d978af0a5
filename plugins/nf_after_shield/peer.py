"""The peer: zuko's RealNVP of about the same size, trained on the same data with the same loss.

zuko (``pip install zuko``; a test and benchmark dependency only) builds the coupling
flow; everything around it is ours and shared: the Gaussianising maps, the whitening and
the physics conversion of a trained `MuonFlow` (so both flows model the same g), the
structured loss with the same sigmas and lambdas, the same batches and optimiser.
`ZukoPeer.sample_physics` has `MuonFlow.sample_physics`'s signature, so the
validation and the benchmark treat both alike.
"""

from __future__ import annotations

import torch
from torch import nn

from shipfastsim.plugins.nf_after_shield.model import DIM, MuonFlow, latent_log_prior

__all__ = ["INSTALL_HINT", "ZukoPeer", "zuko_realnvp"]

INSTALL_HINT = "the zuko peer needs zuko: pip install zuko"


def zuko_realnvp(transforms: int = 12, hidden: int = 32) -> nn.Module:
    """zuko RealNVP over 5 features with the charge as a 1-column context (12 x (32, 32): 16,380 parameters)."""
    try:
        import zuko
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return zuko.flows.RealNVP(DIM, context=1, transforms=transforms, hidden_features=(hidden, hidden))


class ZukoPeer(nn.Module):
    """A zuko flow in place of our couplings, with ``reference``'s preprocessing (copied buffers)."""

    def __init__(self, reference: MuonFlow, transforms: int | None = None, hidden: int | None = None):
        super().__init__()
        self.config = reference.config
        # zuko's couplings take only the fixed columns as input: 1.2x as many transforms
        # match our parameter count (12 x (32, 32): 16,380 against our 10 x 32: 16,100).
        layers = reference.config.layers
        self.flow = zuko_realnvp(transforms or layers + layers // 5, hidden or reference.config.hidden)
        self.maps = MuonFlow(reference.config)
        self.maps.load_state_dict(reference.state_dict())
        self.maps.requires_grad_(False)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.flow.parameters())

    def nll_g(self, g: torch.Tensor, charge: torch.Tensor, sigma: float | torch.Tensor = 1.0) -> torch.Tensor:
        """-log p(g | q) with the latent prior N(0, sigma^2 I), as `MuonFlow.nll_g`."""
        u, log_det_white = self.maps.whiten(g, charge)
        z, log_det = self.flow(charge).transform.call_and_ladj(u)
        return -(latent_log_prior(z, sigma) + log_det + log_det_white)

    def sample_physics(self, eps: torch.Tensor, charge: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
        """Standard-normal eps [n, 5], charge [n, 1] -> x, y, px, py, pz [n, 5]."""
        g = self.maps.unwhiten(self.flow(charge).transform.inv(sigma * eps), charge)
        f = self.maps.inverse_map(g)
        pz = torch.exp(f[:, 4:5])
        return torch.cat([f[:, 0:2], f[:, 2:3] * pz, f[:, 3:4] * pz, pz], 1)
