"""The nested latent of the composite model: its radius picks the subset, so latent sigma < 1 samples dangerous muons.

Seed 000's structured latent: the same model makes the inclusive sample at latent sigma 1
and, at sigma_1 > sigma_2 below 1, muons concentrated on the nested subsets P1 (they enter
the decay vessel) and P2 (they also cross it), with exact weights.  A flow trained with the
structured loss learns such a latent only approximately, and the bundled one's P1 muons
fail the fidelity gate (docs/physics/nf-after-shield.md).  The composite model of ``nf-after-shield`` (``p1_source:
nf-decay-vessel``) has the structure exactly: its component (the specialist of P1 muons, or
the inclusive flow outside P1) and, inside P1, the specialist's P2 flag are latent
variables.  This module gives them the seed's form.  With a latent z ~ N(0, I) in 5
dimensions:

- |z| < r_1: a P1 muon (the specialist), where r_1 holds the P1 fraction p_1 of the
  training transport: P(chi^2_5 < r_1^2) = p_1;
- inside P1, |z| < r_2(c): a P2 muon, where P(chi^2_5 < r_2(c)^2) = p_1 s_c with s_c the
  training transport's P2 share of the P1 muons of charge c (the specialist's JSON);
- otherwise a muon of the inclusive flow outside P1.

At sigma = 1 this is the composite model itself.  Sampling z from N(0, sigma^2 I) draws
P1 with probability q_1(sigma) = P(chi^2_5 < r_1^2 / sigma^2), and P2 inside P1 with
rho_c(sigma) = P(chi^2_5 < r_2(c)^2 / sigma^2) / q_1(sigma).  The muon depends on its
region only, not on where in it z lies, so its weight is the exact importance weight
N(z; 0, I) / N(z; 0, sigma^2 I) averaged over its region: p_1 / q_1 for the specialist's
muons (times the specialist's s_c / rho_c in P2, (1 - s_c) / (1 - rho_c) in the rest of
P1), (1 - p_1) / (1 - q_1) for the others.  That average is the conditional expectation of
the point weight given the region, so every weighted total is the same and its variance
is no larger (Rao-Blackwell).

The draw: the radius of z at sigma decides P1 (`draw_p1`); inside P1 the specialist draws
its P2 flag with the probability rho_c that the radius has there (`p2_probability_in_p1`),
which is the same distribution, since nothing else depends on z within its region.

`NESTED_SIGMAS` (0.2, 0.1) draw 66 % P1 muons (27 % P2) and 95 % P2 muons with the
bundled specialist.  ``p1_share`` sets the component's probability directly instead (1:
P1 muons only, each of weight p_1, the largest effective sample size per muon).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["NESTED_SIGMAS", "LATENT_DIM", "NestedLatent"]

#: Latent sigmas of the composite model that concentrate its muons on P1 and on P2.
NESTED_SIGMAS = (0.2, 0.1)
#: Dimension of the latent whose radius picks the subset (that of the flows' latent).
LATENT_DIM = 5


def _chi2_cdf(x: float) -> float:
    """P(chi^2 with `LATENT_DIM` degrees of freedom < x)."""
    from scipy.special import gammainc

    return float(gammainc(LATENT_DIM / 2, x / 2))


def _chi2_sf(x: float) -> float:
    """P(chi^2 with `LATENT_DIM` degrees of freedom > x), accurate where it is tiny."""
    from scipy.special import gammaincc

    return float(gammaincc(LATENT_DIM / 2, x / 2))


def _chi2_quantile(p: float) -> float:
    """x with P(chi^2 with `LATENT_DIM` degrees of freedom < x) = p."""
    from scipy.special import gammaincinv

    return float(2 * gammaincinv(LATENT_DIM / 2, p))


@dataclass(frozen=True)
class NestedLatent:
    """Radii of the nested subsets of the composite model's latent (module docstring).

    ``p1``: the P1 fraction of all muons at the shield end; ``p2_share``: the P2 share of the
    P1 muons by charge ("mu-", "mu+"), None for a specialist not conditioned on the P2 flag
    (P2 is then not a region of the latent: it is the specialist's own share)."""

    p1: float
    p2_share: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.p1 < 1.0:
            raise ValueError(f"the P1 fraction {self.p1} must lie in (0, 1)")

    @cached_property
    def radius_p1(self) -> float:
        """r_1: the latent radius inside which a muon is a P1 muon (latent units)."""
        return math.sqrt(_chi2_quantile(self.p1))

    def radius_p2(self, charge: str) -> float:
        """r_2(c): the latent radius inside which a P1 muon of charge ``charge`` is a P2 muon."""
        if self.p2_share is None:
            raise ValueError("this specialist is not conditioned on the P2 flag: P2 is not a region of the latent")
        return math.sqrt(_chi2_quantile(self.p1 * self.p2_share[charge]))

    def p1_probability(self, sigma: float) -> float:
        """q_1(sigma): the probability of a P1 muon when the latent is drawn at ``sigma``."""
        return _chi2_cdf(self.radius_p1**2 / sigma**2)

    def p2_probability_in_p1(self, sigma: float) -> dict[str, float] | None:
        """rho_c(sigma) by charge: the probability of P2 for a P1 muon at ``sigma`` (None
        without the P2 flag)."""
        if self.p2_share is None:
            return None
        q1 = self.p1_probability(sigma)
        return {c: _chi2_cdf(self.radius_p2(c) ** 2 / sigma**2) / q1 for c in self.p2_share}

    def weights(self, sigma: float) -> tuple[float, float]:
        """(p_1 / q_1, (1 - p_1) / (1 - q_1)): the weights of the specialist's muons (before
        its own P2 weight) and of the others at ``sigma``."""
        beyond = _chi2_sf(self.radius_p1**2 / sigma**2)  # 1 - q_1, without its cancellation
        return self.p1 / self.p1_probability(sigma), (1.0 - self.p1) / max(beyond, 1e-300)

    def draw_p1(self, n: int, sigma: float, generator: torch.Generator) -> torch.Tensor:
        """Whether each of ``n`` muons is a P1 muon: the radius of z ~ N(0, sigma^2 I) below
        r_1 (bool [n], on the generator's device; `LATENT_DIM` normals per muon)."""
        import torch

        z = torch.randn(n, LATENT_DIM, generator=generator, device=generator.device, dtype=torch.float64)
        return (sigma * z).square().sum(1) < self.radius_p1**2
