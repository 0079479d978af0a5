"""The coupling flow for muons at the end of the shield, with its preprocessing inside.

Physics state at the ``shield_end`` plane (z fixed): x, y [cm], px, py, pz [GeV/c] and
the charge q = +-1 [e].  The flow models the five features

    f = [x, y, tx = px / pz, ty = py / pz, log pz]

(every muon on the plane moves forward, pz > 0, so the map is invertible), each passed
through a monotone piecewise-linear Gaussianising map fitted on the training
quantiles (`shipfastsim.plugins.gan_target.model.fit_quantile_map`, the same maps
as gan-target's): g = Q(f) is roughly N(0, 1) per column.  The flow proper is
RealNVP: ``layers`` affine couplings, each conditioned on the charge, acting on the
whitened u = L_q^-1 (g - mean_q) (per-charge mean and Cholesky factor of the
covariance of g: x and tx, y and ty are 85 % correlated at the shield end, which the
couplings then need not learn),

    u <- u * exp(s) + t,   (s, t) = MLP([u * m, q]) * (1 - m),

with binary masks m (the masked columns pass unchanged).  The masks are folded into
the first and last weight matrices (``W * mask``), so the exported graph is plain
Gemm/Relu/Tanh/Exp/Mul/Add.  ``FlowConfig.coupling`` selects instead rational-quadratic
spline couplings (``spline``) or autoregressive splines (``autoregressive-spline``: each
column conditioned on the ones before it), from `spline`: at the same size they fit
nf-decay-vessel's P1 muons better and this inclusive sample worse (docs/physics/nf-after-shield.md), and they do
not export to ONNX (they gather bin parameters per row).  Sampling runs
latent -> g -> f -> physics (`sample`, `NoiseToMuon`); the density runs the other way
(`log_prob`), with the Jacobians of the couplings, of the Gaussianising maps (the slope
of the segment) and of (tx, ty, log pz) -> (px, py, pz) (|d(tx, ty, log pz) / d(px, py, pz)| = 1 / pz^3).

Structured latent: the prior of subset k is N(0, sigma_k^2 I); sampling z = sigma eps
gives muons whose exact importance weight against the inclusive model is

    w = N(z; 0, I) / N(z; 0, sigma^2 I) = sigma^d exp(|eps|^2 (1 - sigma^2) / 2)

(the flow's Jacobian is the same for both and cancels).  The seed proposes
1 > sigma_1 > sigma_2 (dangerous muons in the latent core).  Measured on the TRY_2025
data, the loss cannot put them there without biasing the inclusive model: its optimum
density is about P0 + lambda_1 P1, i.e. P1 over-produced by 1 + lambda_1 / p_1 (p_1 =
1.2e-3 of the shield-end muons): lambda_1 = 0.3 gave 75x too many P1 muons at sigma 1,
lambda_1 = 1e-3 gave 2.3x; on the bundled data (1.1e7 rows, `data`) lambda_1 = 1e-4 gave
1.24x on the validation split (and px outliers beyond 1e20 GeV/c among 4e5 muons) and
lambda_1 = 1e-5 1.10x, with similar P1 shapes.  The rare muons that enter the decay
vessel (near the beam axis, where the shield has swept the bulk away) sit in the latent
*tails*: sigma_1 = 0.5 de-enriched P1 100-fold.  The
bundled model keeps the seed's loss with sigmas (1, 0.5, 0.35) and small lambdas (1e-5,
1e-6), for an unbiased inclusive model, and is sampled *wider* to enrich the dangerous
muons (`DANGEROUS_SIGMAS` of the plugin, 1.3 and 1.6: weights exact and bounded by
sigma^d).  Training with sigmas (1, 1.3, 1.6) instead gave the same enrichment and a
worse px (W1/sigma 0.11).  More knots of the Gaussianising maps (no parameters) lower
the P0 boosted-trees AUC on the validation split (24, 48, 96 knots: 0.546, 0.540, 0.527;
the maps alone, with a perfect Gaussian latent, leave x and tx at AUC 0.57, 0.54, 0.52)
and worsen P1 (AUC 0.70, 0.72, 0.73).  The bundled model has 48: with 24 the same
training emitted non-finite muons at latent sigma 1.3 (24 in 2e6, exp(log pz) overflowing
in the latent tails), with 48 and 96 none in 2e6.  TRY_2026's shield end has sharp steps in x
at the iron edges, where 48 knots hold the P0 AUC at 0.57 on 400,000 rows whatever the flow;
192 knots (``train --knots``) give 0.559 after 5,000 steps, 0.542 after 15,000 (docs/try2026.md).  Units: cm, GeV/c.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shipfastsim.plugins.gan_target.model import (
    _step,
    apply_quantile_map,
    fit_quantile_map,
    load_module,
    relu_form,
    save_generator,
)
from shipfastsim.plugins.nf_after_shield.spline import AutoregressiveSpline, SplineCoupling

__all__ = ["COUPLINGS", "DIM", "FEATURES", "FlowConfig", "MuonFlow", "NoiseToMuon", "physical_to_features",
           "importance_weight", "latent_log_prior", "save_flow", "load_flow"]

#: The coupling layers a `FlowConfig` can ask for.
COUPLINGS = ("affine", "spline", "autoregressive-spline")
#: Dimension of the latent and of the feature space.
DIM = 5
FEATURES = ("x", "y", "tx", "ty", "log_pz")
_BASE_MASKS = ((1, 1, 0, 0, 0), (1, 0, 1, 0, 1), (0, 1, 1, 0, 0), (1, 0, 0, 1, 1), (0, 0, 1, 1, 0))


@dataclass
class FlowConfig:
    """Architecture and structured-latent settings (saved beside the weights)."""

    layers: int = 10
    hidden: int = 32
    knots: int = 48          # knots of each Gaussianising map (see the module docstring)
    scale_bound: float = 2.0  # |s| <= scale_bound (tanh-bounded log-scale)
    coupling: str = "affine"  # or "spline": rational-quadratic spline couplings (`spline.SplineCoupling`)
    bins: int = 8             # spline couplings: bins per spline
    tail_bound: float = 4.0   # spline couplings: the spline acts on [-B, B], the identity outside
    sigmas: tuple[float, ...] = (1.0, 0.5, 0.35)  # loss sigmas of P0, P1, P2 (see the module docstring)
    z_plane: float = 3148.66  # cm, z of the plane the muons are on
    fraction_mu_plus: float = 0.5
    contexts: int = 1         # condition columns: the charge, then (2) nf-decay-vessel's P2 flag
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def physical_to_features(x, y, px, py, pz) -> np.ndarray:
    """Physical columns (cm, GeV/c; numpy, pz > 0) to the features [n, 5] (see module docstring)."""
    return np.stack([x, y, px / pz, py / pz, np.log(pz)], axis=1)


def importance_weight(eps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Exact weight N(z; 0, I) / N(z; 0, sigma^2 I) of z = sigma * eps, from eps [n, d]."""
    d = eps.shape[1]
    return sigma**d * torch.exp(0.5 * (1.0 - sigma * sigma) * (eps * eps).sum(1))


def latent_log_prior(z: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """log N(z; 0, sigma^2 I) per row of z [n, d]; sigma a number or one per row."""
    sigma = torch.as_tensor(sigma, dtype=z.dtype, device=z.device)
    d = z.shape[1]
    return -0.5 * (z * z).sum(1) / sigma**2 - d * (torch.log(sigma) + 0.5 * math.log(2 * math.pi))


def _masks(layers: int) -> torch.Tensor:
    pairs = [m for base in _BASE_MASKS for m in (base, tuple(1 - b for b in base))]
    return torch.tensor([pairs[i % len(pairs)] for i in range(layers)], dtype=torch.float32)


class Coupling(nn.Module):
    """One affine coupling; ``mask`` marks the columns that pass unchanged."""

    def __init__(self, mask: torch.Tensor, hidden: int, scale_bound: float, contexts: int = 1):
        super().__init__()
        self.register_buffer("mask", mask.clone())
        self.scale_bound, self.contexts = scale_bound, contexts
        self.first = nn.Linear(DIM + contexts, hidden)
        self.middle = nn.Linear(hidden, hidden)
        self.last = nn.Linear(hidden, 2 * DIM)
        nn.init.zeros_(self.last.weight)  # start as the identity map
        nn.init.zeros_(self.last.bias)

    def scale_shift(self, g: torch.Tensor, charge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        free = 1.0 - self.mask
        # columns of fixed g, then the conditions
        w_in = self.first.weight * torch.cat([self.mask, self.mask.new_ones(self.contexts)])  # static: the export
        h = torch.relu(torch.nn.functional.linear(torch.cat([g, charge], 1), w_in, self.first.bias))
        h = torch.relu(self.middle(h))
        out_mask = torch.cat([free, free])
        st = torch.nn.functional.linear(h, self.last.weight * out_mask[:, None], self.last.bias * out_mask)
        return self.scale_bound * torch.tanh(st[:, :DIM]), st[:, DIM:]

    def forward(self, g: torch.Tensor, charge: torch.Tensor) -> torch.Tensor:
        s, t = self.scale_shift(g, charge)
        return g * torch.exp(s) + t

    def inverse(self, g: torch.Tensor, charge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.scale_shift(g, charge)  # depends on the fixed columns only, equal in g and its image
        return (g - t) * torch.exp(-s), -s.sum(1)


class MuonFlow(nn.Module):
    """Latent [n, 5] and charge [n, 1] <-> physics; see the module docstring."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        if config.coupling not in COUPLINGS:
            raise ValueError(f"unknown coupling {config.coupling!r}; allowed: {', '.join(COUPLINGS)}")
        if config.coupling == "spline":
            layers = [SplineCoupling(m, config.hidden, config.bins, config.tail_bound, config.contexts)
                      for m in _masks(config.layers)]
        elif config.coupling == "autoregressive-spline":
            # Each transform reverses the order of the one before (column 0 first, then last, ...).
            orders = [torch.arange(DIM) if k % 2 == 0 else torch.arange(DIM).flip(0) for k in range(config.layers)]
            layers = [AutoregressiveSpline(o, config.hidden, config.bins, config.tail_bound, config.contexts)
                      for o in orders]
        else:
            layers = [Coupling(m, config.hidden, config.scale_bound, config.contexts) for m in _masks(config.layers)]
        self.couplings = nn.ModuleList(layers)
        inner = config.knots - 2
        # Gaussianising maps: forward knots (for the density) and the inverse in relu form (for sampling).
        self.register_buffer("knots_f", torch.linspace(-1, 1, config.knots).repeat(DIM, 1))
        self.register_buffer("knots_g", torch.linspace(-1, 1, config.knots).repeat(DIM, 1))
        self.register_buffer("inv_offset", torch.zeros(DIM))
        self.register_buffer("inv_slope", torch.ones(DIM))
        self.register_buffer("inv_select", torch.repeat_interleave(torch.eye(DIM), inner, dim=1))
        self.register_buffer("inv_hinges", torch.zeros(DIM * inner))
        self.register_buffer("inv_coef", torch.zeros(DIM * inner, DIM))
        # per-charge whitening of g (index 0: mu-, 1: mu+): u = L^-1 (g - mean), g = L u + mean
        self.register_buffer("white_mean", torch.zeros(2, DIM))
        self.register_buffer("white_chol", torch.eye(DIM).repeat(2, 1, 1))

    # ---- preprocessing ----------------------------------------------------------------
    def fit_maps(self, features: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Fit the Gaussianising maps on training features [n, 5] (quantiles weighted by
        ``weights``, unweighted when None)."""
        import scipy.stats

        inner = self.config.knots - 2
        coef = torch.zeros(DIM * inner, DIM, dtype=torch.float64)
        # The sample's extremes sit at the expected extreme of n normal draws, so the outer
        # segments (and their linear continuation) are no steeper than the sample warrants.
        g_outer = max(4.0, float(scipy.stats.norm.isf(0.5 / len(features))))
        for j in range(DIM):
            t, g = fit_quantile_map(features[:, j], np.ones(len(features)) if weights is None else weights,
                                    self.config.knots, g_outer=g_outer)
            self.knots_f[j], self.knots_g[j] = torch.as_tensor(t), torch.as_tensor(g)
            a0, b, hinges, c = relu_form(g, t)
            self.inv_offset[j], self.inv_slope[j] = a0, b
            self.inv_hinges[j * inner:(j + 1) * inner] = torch.as_tensor(hinges)
            coef[j * inner:(j + 1) * inner, j] = torch.as_tensor(c)
        self.inv_coef.copy_(coef)

    def fit_whitening(self, g: np.ndarray, charge: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Mean and Cholesky factor of the covariance of g [n, 5] for each charge (weighted
        by ``weights`` when given)."""
        for index, sign in enumerate((-1.0, 1.0)):
            rows = g[charge == sign]
            if weights is None:
                chol = np.linalg.cholesky(np.cov(rows.T))
                self.white_mean[index] = torch.as_tensor(rows.mean(0))
            else:
                w = weights[charge == sign]
                chol = np.linalg.cholesky(np.cov(rows.T, aweights=w))
                self.white_mean[index] = torch.as_tensor(np.average(rows, axis=0, weights=w))
            self.white_chol[index] = torch.as_tensor(chol)

    def whiten(self, g: torch.Tensor, charge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u = L_q^-1 (g - mean_q) and log|det du/dg| per row (charge [n, 1], or the
        conditions [n, contexts] with the charge first)."""
        plus = self._charge(charge) > 0
        # a triangular solve with the stored factor: exactly the inverse of `unwhiten`
        u = [torch.linalg.solve_triangular(self.white_chol[i], (g - self.white_mean[i]).T, upper=False).T
             for i in (0, 1)]
        log_det = [-torch.log(torch.diagonal(self.white_chol[i])).sum() for i in (0, 1)]
        return torch.where(plus, u[1], u[0]), torch.where(plus[:, 0], log_det[1], log_det[0])

    def _charge(self, conditions: torch.Tensor) -> torch.Tensor:
        """The charge column [n, 1] of the conditions (no Slice in the exported graph of one)."""
        return conditions if self.config.contexts == 1 else conditions[:, :1]

    def unwhiten(self, u: torch.Tensor, charge: torch.Tensor) -> torch.Tensor:
        """g = L_q u + mean_q for charge +-1 [n, 1], as arithmetic (MatMul, Mul, Add) for the export."""
        plus = 0.5 * (self._charge(charge) + 1.0)
        g_plus = torch.matmul(u, self.white_chol[1].T) + self.white_mean[1]
        g_minus = torch.matmul(u, self.white_chol[0].T) + self.white_mean[0]
        return plus * g_plus + (1.0 - plus) * g_minus

    def gaussianise(self, features: np.ndarray) -> np.ndarray:
        """Features [n, 5] -> g (numpy, float64)."""
        t, g = self.knots_f.double().cpu().numpy(), self.knots_g.double().cpu().numpy()
        return np.stack([apply_quantile_map(features[:, j], t[j], g[j]) for j in range(DIM)], axis=1)

    def map_log_slope(self, features: torch.Tensor) -> torch.Tensor:
        """Sum over columns of log dg/df of the Gaussianising maps at ``features`` [n, 5]."""
        total = features.new_zeros(features.shape[0])
        for j in range(DIM):
            t, g = self.knots_f[j].to(features.dtype), self.knots_g[j].to(features.dtype)
            slopes = torch.diff(g) / torch.diff(t)
            segment = (torch.searchsorted(t.contiguous(), features[:, j].contiguous()) - 1).clamp(0, len(slopes) - 1)
            total = total + torch.log(slopes[segment])
        return total

    def inverse_map(self, g: torch.Tensor) -> torch.Tensor:
        """g [n, 5] -> features (MatMul, Sub, Relu, Mul, Add)."""
        hinge = torch.relu(torch.matmul(g, self.inv_select) - self.inv_hinges)
        return self.inv_offset + self.inv_slope * g + torch.matmul(hinge, self.inv_coef)

    # ---- flow ---------------------------------------------------------------------------
    def latent_to_g(self, z: torch.Tensor, charge: torch.Tensor) -> torch.Tensor:
        for coupling in self.couplings:
            z = coupling(z, charge)
        return self.unwhiten(z, charge)

    def g_to_latent(self, g: torch.Tensor, charge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent and log|det d latent / d g| of g [n, 5]."""
        g, log_det = self.whiten(g, charge)
        for coupling in reversed(self.couplings):
            g, ld = coupling.inverse(g, charge)
            log_det = log_det + ld
        return g, log_det

    def nll_g(self, g: torch.Tensor, charge: torch.Tensor, sigma: float | torch.Tensor = 1.0) -> torch.Tensor:
        """-log p(g | q) per row with the latent prior N(0, sigma^2 I) (the training loss terms);
        ``sigma`` a number or one per row."""
        z, log_det = self.g_to_latent(g, charge)
        return -(latent_log_prior(z, sigma) + log_det)

    def log_prob(self, x, y, px, py, pz, charge, sigma: float = 1.0) -> torch.Tensor:
        """log density of the physical state given the charge, in (x, y, px, py, pz)
        [per cm^2 (GeV/c)^3]; all arguments are 1-D tensors, charge +-1."""
        f = torch.stack([x, y, px / pz, py / pz, torch.log(pz)], 1).to(self.inv_offset.dtype)
        g = torch.as_tensor(self.gaussianise(f.detach().cpu().numpy()), dtype=f.dtype, device=f.device)
        nll = self.nll_g(g, charge.to(f.dtype).view(-1, 1), sigma)
        return -nll + self.map_log_slope(f) - 3.0 * torch.log(pz.to(f.dtype))

    def sample_physics(self, eps: torch.Tensor, charge: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
        """Standard-normal eps [n, 5], charge [n, 1] -> x, y, px, py, pz [n, 5] at latent sigma."""
        f = self.inverse_map(self.latent_to_g(sigma * eps, charge))
        pz = torch.exp(f[:, 4:5])
        return torch.cat([f[:, 0:2], f[:, 2:3] * pz, f[:, 3:4] * pz, pz], 1)


class NoiseToMuon(nn.Module):
    """Noise [n, 6] (5 standard normals, then one uniform in [0, 1)) -> muons [n, 8]:
    x, y, z [cm], px, py, pz [GeV/c], PDG id (+-13), importance weight; the inference
    graph of the sampler and the export.  ``sigma`` is the latent sigma (1: inclusive)."""

    def __init__(self, flow: MuonFlow, sigma: float = 1.0):
        super().__init__()
        self.flow, self.sigma = flow, float(sigma)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        eps, u = noise[:, :DIM], noise[:, DIM:DIM + 1]
        plus = _step(self.flow.config.fraction_mu_plus - u)  # 1 for mu+ (u below the mu+ fraction)
        charge = 2.0 * plus - 1.0
        state = self.flow.sample_physics(eps, charge, self.sigma)
        s2 = self.sigma * self.sigma
        square = torch.matmul(eps * eps, torch.ones(DIM, 1, dtype=eps.dtype))  # |eps|^2 as MatMul (SOFIE)
        weight = self.sigma**DIM * torch.exp(0.5 * (1.0 - s2) * square)
        z = u * 0.0 + self.flow.config.z_plane  # arithmetic, not ConstantOfShape, for SOFIE
        return torch.cat([state[:, 0:2], z, state[:, 2:5], -13.0 * charge, weight], 1)


def save_flow(flow: MuonFlow, weights_path: str | Path, metadata: dict) -> Path:
    """Write the weights (safetensors) and, beside them, a JSON with the architecture and ``metadata``."""
    return save_generator(flow, weights_path, metadata, model="nf-after-shield")


def load_flow(weights_path: str | Path, device: torch.device | str = "cpu") -> MuonFlow:
    """A `MuonFlow` in eval mode from a safetensors file and its JSON sidecar (no pickle)."""
    return load_module(weights_path, lambda arch: MuonFlow(FlowConfig(**arch | {"sigmas": tuple(arch["sigmas"])})),
                       device)
