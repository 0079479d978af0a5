"""The target-muon GAN: feature transforms, generator and critic networks.

Representation (checked on the shared SHiP GAN sample): about 79 % of the muons start
within a few micrometres of the beam axis (*prompt*: r = hypot(x, y) < `R_PROMPT`),
the others at r ~ 0.01-5 cm, mostly displaced *along* their transverse momentum
(decays in flight of pions and kaons).  z spans the target (0-230 cm, falling
exponentially), pz 14-360 GeV/c, pT up to ~7 GeV/c.  So the networks work in

    [log pz, px, py, log z, log r, cos(dphi), sin(dphi)]

(each standardised with the training set's mean and std), where dphi is the azimuth
of the position relative to that of the transverse momentum.  Charge and the prompt
flag form four classes drawn from their training frequencies by one uniform noise
number and fed to the networks as a one-hot condition (one conditional GAN in place
of the paper's four GANs).  Every inverse transform is plain arithmetic (Exp, Sqrt,
Mul, Div, Relu, Gemm), so `MuonGenerator` exports to ONNX opsets SOFIE reads.

Units: cm, GeV/c; output z is in FairShip's frame (target start at z = 0).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["save_generator", "load_generator", "R_PROMPT", "N_CLASSES", "N_FEATURES", "GanConfig",
           "physical_to_features", "class_of", "MuonGenerator", "Critic"]

#: Radius below which a muon counts as prompt [cm].
R_PROMPT = 3e-4
N_CLASSES = 4  # (non-prompt, mu-), (non-prompt, mu+), (prompt, mu-), (prompt, mu+)
N_FEATURES = 7
_STEEP = 1e9  # slope of the arithmetic step function used for class selection
_EPS = 1e-12


@dataclass
class GanConfig:
    """Architecture of the generator (saved beside the weights)."""

    noise_dim: int = 16
    hidden: int = 128
    layers: int = 3
    negative_slope: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)


def class_of(charge: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Class index 0-3 from charge [e] and radius [cm]: 2 * prompt + (charge > 0)."""
    return 2 * (r < R_PROMPT).astype(np.int64) + (charge > 0).astype(np.int64)


def physical_to_features(x, y, z, px, py, pz) -> np.ndarray:
    """Physical columns (cm, GeV/c; numpy) to the unstandardised network features [n, 7]."""
    pt = np.sqrt(px**2 + py**2) + _EPS
    ux, uy = px / pt, py / pt
    r = np.sqrt(x**2 + y**2) + _EPS
    cos, sin = (x * ux + y * uy) / r, (-x * uy + y * ux) / r
    return np.stack([np.log(pz), px, py, np.log(np.maximum(z, 1e-4)), np.log(r), cos, sin], axis=1)


def _step(t: torch.Tensor) -> torch.Tensor:
    """1 for t > 0, 0 for t <= 0 (exactly, unless 0 < t < 1e-9), from Relu arithmetic: min(relu(k t), 1)."""
    return 1.0 - torch.relu(1.0 - torch.relu(t * _STEEP))


def _mlp(n_in: int, n_out: int, hidden: int, layers: int, slope: float) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.LeakyReLU(slope)]
        width = hidden
    modules.append(nn.Linear(width, n_out))
    return nn.Sequential(*modules)


class MuonGenerator(nn.Module):
    """Noise ``[n, noise_dim + 1]`` -> muons ``[n, 7]``: x, y, z [cm], px, py, pz [GeV/c], PDG id (float).

    The first ``noise_dim`` noise columns are standard normal, the last one uniform in
    [0, 1) and picks the class.  Deterministic; everything after the noise is inside.
    """

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        self.net = _mlp(config.noise_dim + N_CLASSES, N_FEATURES, config.hidden, config.layers, config.negative_slope)
        self.register_buffer("feature_mean", torch.zeros(N_FEATURES))
        self.register_buffer("feature_std", torch.ones(N_FEATURES))
        self.register_buffer("class_edges", torch.tensor([0.25, 0.5, 0.75]))  # cumulative class probabilities
        # physical range of the unstandardised features (training min/max): outputs are clamped into it
        self.register_buffer("feature_low", torch.full((N_FEATURES,), -1e4))
        self.register_buffer("feature_high", torch.full((N_FEATURES,), 1e4))

    def one_hot(self, u: torch.Tensor) -> torch.Tensor:
        """Class one-hot ``[n, 4]`` from uniforms ``u`` ``[n, 1]``."""
        above = _step(u - self.class_edges.view(1, -1))  # [n, 3]: u above each edge
        zeros = u * 0.0  # arithmetic, not ConstantOfShape, for SOFIE
        lower = torch.cat([zeros + 1.0, above], dim=1)
        upper = torch.cat([above, zeros], dim=1)
        return lower - upper

    def raw(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised critic-space features (direction normalised) and the one-hot."""
        onehot = self.one_hot(noise[:, -1:])
        return self.conditional(noise[:, :-1], onehot), onehot

    def conditional(self, gauss: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Standardised critic-space features for Gaussian noise and given classes."""
        out = self.net(torch.cat([gauss, onehot], dim=1))
        a, b = out[:, 5:6], out[:, 6:7]
        norm = torch.sqrt(a * a + b * b + 1e-8)
        cos, sin = a / norm, b / norm
        mean, std = self.feature_mean, self.feature_std
        direction = torch.cat([(cos - mean[5]) / std[5], (sin - mean[6]) / std[6]], dim=1)
        return torch.cat([out[:, :5], direction], dim=1)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        features, onehot = self.raw(noise)
        f = features * self.feature_std + self.feature_mean
        f = self.feature_low + torch.relu(f - self.feature_low) - torch.relu(f - self.feature_high)  # clamp
        pz, px, py = torch.exp(f[:, 0:1]), f[:, 1:2], f[:, 2:3]
        z, r, cos, sin = torch.exp(f[:, 3:4]), torch.exp(f[:, 4:5]), f[:, 5:6], f[:, 6:7]
        pt = torch.sqrt(px * px + py * py + 1e-24)
        ux, uy = px / pt, py / pt
        x = r * (cos * ux - sin * uy)
        y = r * (cos * uy + sin * ux)
        charge = 2.0 * (onehot[:, 1:2] + onehot[:, 3:4]) - 1.0
        pdg = charge * -13.0
        return torch.cat([x, y, z, px, py, pz, pdg], dim=1)


class Critic(nn.Module):
    """WGAN critic on standardised features plus the class one-hot (no normalisation layers)."""

    def __init__(self, hidden: int = 256, layers: int = 3, slope: float = 0.2):
        super().__init__()
        self.net = _mlp(N_FEATURES + N_CLASSES, 1, hidden, layers, slope)

    def forward(self, features: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, onehot], dim=1)).squeeze(1)


def _sidecar(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_generator(generator: MuonGenerator, weights_path: str | Path, metadata: dict) -> Path:
    """Write the weights (safetensors) and, beside them, a JSON with the architecture and ``metadata``."""
    from safetensors.torch import save_file

    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().float() for k, v in generator.state_dict().items()}
    save_file(state, str(weights_path), metadata={"format": "pt", "model": "gan-target"})
    document = {"architecture": generator.config.to_dict()} | metadata
    _sidecar(weights_path).write_text(json.dumps(document, indent=1, default=float) + "\n")
    return weights_path


def load_generator(weights_path: str | Path, device: torch.device | str = "cpu") -> MuonGenerator:
    """A `MuonGenerator` in eval mode from a safetensors file and its JSON sidecar."""
    from safetensors.torch import load_file

    document = json.loads(_sidecar(weights_path).read_text())
    generator = MuonGenerator(GanConfig(**document["architecture"]))
    generator.load_state_dict(load_file(str(weights_path)))
    return generator.to(device).eval().requires_grad_(False)
