"""The target-muon normalising flow: class-conditional affine couplings on gan-target's features.

Feature space (shared with ``gan-target``, `shipfastsim.plugins.gan_target.model`):
log pz, log pT, log z, log r, each Gaussianised by a monotone piecewise-linear map
fitted on the train split, then the unit vectors (cos phi, sin phi) of pT and
(cos dphi, sin dphi) of the displacement relative to pT.  A flow needs an unbounded
space of fixed dimension, and a unit vector lives on a circle, so each is
*radially dequantised*: the flow models v = rho * u with rho drawn, independently of
everything, from the chi distribution with 4 degrees of freedom (rho^2 = -2 log(U1 U2)).
For a uniform direction v then has the density |v|^2 exp(-|v|^2 / 2) / (4 pi): smooth,
Gaussian-like, and nearly empty near |v| = 0, where the direction v / |v| would be
ill-conditioned (with the Rayleigh radius, for which v would be exactly normal, 0.5 %
of the muons have |v| < 0.1 and float32 engines then disagree on their x, y, px, py by
more than 1e-5).  Generation draws v and returns u = v / |v|, whose distribution is the
data's whatever rho was.  So x = (g0..g3, v_phi, v_dphi) in R^8.

Flow (generation direction, noise z ~ N(0, I_8) -> x), repeated ``couplings`` times:
a fixed orthogonal mixing (a seeded random rotation: every coupling sees new
combinations of the features), then an affine coupling: with a binary mask m (half
the dimensions), x = m * z + (1 - m) * (z * exp(s) + t), where (s, t) come from a
LeakyReLU MLP of (m * z, class one-hot) and s = `scale_bound` * tanh(.) keeps each
step's scale within exp(+-scale_bound).  The class (charge x prompt/displaced, drawn
from its training frequency by one uniform, as in gan-target) conditions every
coupling.  The inverse (x -> z) and the log-determinant are exact, so training is
maximum likelihood.  The generation graph uses only Gemm/MatMul, LeakyRelu, Tanh,
Exp, Mul, Add, Sub, Sqrt, Div, Relu and Concat: ONNX and SOFIE read it.

Units: cm, GeV/c; output z in FairShip's frame (target start at z = 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shipfastsim.plugins.gan_target.model import (
    N_CLASSES,
    N_FEATURES,
    N_MAPPED,
    MappedFeatureModule,
    leaky_mlp,
    load_module,
    save_generator,
)

__all__ = ["FlowConfig", "FlowGenerator", "save_flow", "load_flow", "radial_dequantise"]


@dataclass
class FlowConfig:
    """Architecture of the flow (saved beside the weights)."""

    couplings: int = 10
    hidden: int = 64
    layers: int = 2  # hidden layers of each coupling's MLP
    negative_slope: float = 0.01
    scale_bound: float = 2.0
    knots: int = 24  # knots of each Gaussianising map
    mixing_seed: int = 7  # seed of the fixed rotations and masks

    def to_dict(self) -> dict:
        return asdict(self)


def _coupling_net(n_in: int, n_out: int, config: FlowConfig) -> nn.Sequential:
    net = leaky_mlp(n_in, n_out, config.hidden, config.layers, config.negative_slope)
    nn.init.zeros_(net[-1].weight)  # every coupling starts as the identity
    nn.init.zeros_(net[-1].bias)
    return net


class AffineCoupling(nn.Module):
    """x = m z + (1 - m)(z exp(s) + t), (s, t) = MLP(m z, class); exact inverse and log|det|."""

    def __init__(self, mask: torch.Tensor, config: FlowConfig):
        super().__init__()
        self.register_buffer("mask", mask)
        self.scale_bound = config.scale_bound
        self.net = _coupling_net(N_FEATURES + N_CLASSES, 2 * N_FEATURES, config)

    def _scale_shift(self, fixed: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat([fixed, onehot], dim=1))
        free = 1.0 - self.mask
        return self.scale_bound * torch.tanh(out[:, :N_FEATURES]) * free, out[:, N_FEATURES:] * free

    def forward(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        s, t = self._scale_shift(z * self.mask, onehot)
        return z * torch.exp(s) + t

    def inverse(self, x: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z and log|det dz/dx| per row."""
        s, t = self._scale_shift(x * self.mask, onehot)
        return (x - t) * torch.exp(-s), -s.sum(dim=1)


def _rotations_and_masks(config: FlowConfig) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(config.mixing_seed)
    rotations = [np.linalg.qr(rng.normal(size=(N_FEATURES, N_FEATURES)))[0] for _ in range(config.couplings)]
    masks = []
    for k in range(config.couplings):
        mask = np.zeros(N_FEATURES)
        mask[rng.permutation(N_FEATURES)[: N_FEATURES // 2]] = 1.0
        masks.append(mask if k % 2 == 0 else 1.0 - masks[-1])  # each pair of couplings updates every dimension
    return (torch.as_tensor(np.stack(rotations), dtype=torch.float32),
            torch.as_tensor(np.stack(masks), dtype=torch.float32))


class FlowGenerator(MappedFeatureModule):
    """Noise ``[n, 9]`` (8 standard normals, then one uniform) -> muons ``[n, 7]``:
    x, y, z [cm], px, py, pz [GeV/c], PDG id (float).  Deterministic."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        rotations, masks = _rotations_and_masks(config)
        self.register_buffer("rotations", rotations)
        self.couplings = nn.ModuleList(AffineCoupling(masks[k], config) for k in range(config.couplings))
        self._register_maps(config.knots)

    @property
    def noise_width(self) -> int:
        return N_FEATURES + 1

    def sample_space(self, z: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Base noise ``[n, 8]`` -> flow space x (generation direction)."""
        for k, coupling in enumerate(self.couplings):
            z = coupling(torch.matmul(z, self.rotations[k]), onehot)
        return z

    def log_prob(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """log density of flow-space rows ``x`` ``[n, 8]`` given their classes [per row, nats]."""
        log_det = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for k in reversed(range(len(self.couplings))):
            x, step = self.couplings[k].inverse(x, onehot)
            x = torch.matmul(x, self.rotations[k].T)  # orthogonal: |det| = 1
            log_det = log_det + step
        return -0.5 * (x * x).sum(dim=1) - 0.5 * N_FEATURES * np.log(2 * np.pi) + log_det

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        onehot = self.one_hot(noise[:, -1:])
        x = self.sample_space(noise[:, :N_FEATURES], onehot)
        units = []
        for j in (N_MAPPED, N_MAPPED + 2):  # radial dequantisation undone: v / |v|
            a, b = x[:, j:j + 1], x[:, j + 1:j + 2]
            norm = torch.sqrt(a * a + b * b + 1e-12)
            units += [a / norm, b / norm]
        return self.muon_state(torch.cat([x[:, :N_MAPPED], *units], dim=1), onehot)


def radial_dequantise(features: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flow-space rows from `TargetSample` features (unit vectors in columns 4-7): each unit
    vector times an independent chi(4) radius, rho = sqrt(-2 log(U1 U2))."""
    n = len(features)
    u = torch.rand(n, 4, generator=generator, device=features.device, dtype=features.dtype)
    log_u = torch.log1p(-u)  # 1 - U in (0, 1]: no log(0)
    rho = torch.sqrt(-2.0 * (log_u[:, 0::2] + log_u[:, 1::2]))
    scale = torch.cat([torch.ones(n, N_MAPPED, dtype=features.dtype, device=features.device),
                       rho[:, :1], rho[:, :1], rho[:, 1:], rho[:, 1:]], dim=1)
    return features * scale


def save_flow(flow: FlowGenerator, weights_path: str | Path, metadata: dict) -> Path:
    """Write the weights (safetensors) and, beside them, a JSON with the architecture and ``metadata``."""
    return save_generator(flow, weights_path, metadata, model="flow-target")


def load_flow(weights_path: str | Path, device: torch.device | str = "cpu") -> FlowGenerator:
    """A `FlowGenerator` in eval mode from a safetensors file and its JSON sidecar (no pickle)."""
    return load_module(weights_path, lambda architecture: FlowGenerator(FlowConfig(**architecture)), device)
