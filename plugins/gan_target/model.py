"""The target-muon GAN: feature transforms, generator and critic networks.

Representation (checked on the shared SHiP GAN sample): about 73-79 % of the muons
start within a few micrometres of the beam axis (*prompt*: r = hypot(x, y) <
`R_PROMPT`), the others at r ~ 0.01-6 cm, mostly displaced *along* their transverse
momentum (decays in flight of pions and kaons).  z spans the target (0-230 cm,
falling exponentially), pz 14-360 GeV/c, pT up to ~7 GeV/c.  So the physics features
are

    [log pz, log pT, log z, log r, cos(phi), sin(phi), cos(dphi), sin(dphi)]

where phi is the azimuth of the transverse momentum and dphi that of the position
relative to it (r is floored at `R_FLOOR`).  pT and phi in place of px and py (the
first bundled model's choice) put the p-pT correlation into one smooth 2-D relation
of (log pz, log pT): with px, py the boosted-trees two-sample test saw the (pT, pz)
plane at AUC 0.56 and a 10 % ripple in phi.

*Gaussianising transforms.*  The first four features are heavy-tailed or multi-modal
(log r is bimodal: prompt vs displaced), and a network with Gaussian-like outputs
under-resolves their tails.  Each is therefore mapped by a monotone piecewise-linear
function fitted to the training quantiles (`fit_quantile_map`) onto a roughly
standard-normal variable g; the generator outputs g and the inverse map (also
monotone piecewise linear) returns the physics feature.  Both maps are written as

    f(g) = a0 + b * g + sum_k c_k * relu(g - knot_k)

so the exported graph needs only MatMul, Add, Mul and Relu (SOFIE reads them), no
searchsorted or gather.  Beyond the outer knots (the training minimum and maximum)
the map continues linearly with the slope of its outer segment: there is no clamp,
so no probability mass piles up in edge bins, and the tails are learnable; physical
validity needs no clamp either (pz, z, r come out of Exp, hence > 0; the charge and
|PDG id| = 13 come from the class).  The quantiles are taken with prompt and displaced
muons weighted equally, so the knots resolve both modes of log r (and the displaced
muons' r tail, which with unweighted quantiles would be squeezed into the top 20 %
of the Gaussian).  The cos and sin pairs stay standardised: each pair of the
generator's raw outputs is normalised to a unit vector.

Charge and the prompt flag form four classes drawn from their training frequencies by
one uniform noise number and fed to the networks as a one-hot condition (one
conditional GAN in place of the paper's four GANs).  Every inverse transform is plain
arithmetic (Exp, Sqrt, Mul, Div, Relu, MatMul, Gemm), so `MuonGenerator` exports to
ONNX opsets SOFIE reads.

Units: cm, GeV/c; output z is in FairShip's frame (target start at z = 0).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["save_generator", "load_generator", "load_module", "R_PROMPT", "R_FLOOR", "N_CLASSES", "N_FEATURES",
           "N_MAPPED", "PT_FLOOR", "GanConfig", "physical_to_features", "class_of", "fit_quantile_map",
           "apply_quantile_map", "leaky_mlp", "MappedFeatureModule", "MuonGenerator", "Critic"]

#: Radius below which a muon counts as prompt [cm].
R_PROMPT = 3e-4
N_CLASSES = 4  # (non-prompt, mu-), (non-prompt, mu+), (prompt, mu-), (prompt, mu+)
N_FEATURES = 8
N_MAPPED = 4  # features 0-3 (log pz, log pT, log z, log r) go through the Gaussianising map
#: Transverse momenta are floored at this value before the logarithm [GeV/c] (sample minimum 2.2e-3).
PT_FLOOR = 1e-4
#: Radii below this are stored as 0 in the sample (x, y have 1e-5 cm resolution) [cm].
R_FLOOR = 1e-6
_STEEP = 1e9  # slope of the arithmetic step function used for class selection
_EPS = 1e-12


@dataclass
class GanConfig:
    """Architecture of the generator (saved beside the weights)."""

    noise_dim: int = 16
    hidden: int = 96
    layers: int = 3
    negative_slope: float = 0.2
    knots: int = 24  # knots of each Gaussianising piecewise-linear map

    def to_dict(self) -> dict:
        return asdict(self)


def class_of(charge: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Class index 0-3 from charge [e] and radius [cm]: 2 * prompt + (charge > 0)."""
    return 2 * (r < R_PROMPT).astype(np.int64) + (charge > 0).astype(np.int64)


def physical_to_features(x, y, z, px, py, pz) -> np.ndarray:
    """Physical columns (cm, GeV/c; numpy) to the unstandardised network features [n, 8]."""
    pt = np.sqrt(px**2 + py**2) + _EPS
    ux, uy = px / pt, py / pt
    r = np.sqrt(x**2 + y**2) + _EPS
    cos, sin = (x * ux + y * uy) / r, (-x * uy + y * ux) / r
    return np.stack([np.log(pz), np.log(np.maximum(pt, PT_FLOOR)), np.log(np.maximum(z, 1e-4)),
                     np.log(np.maximum(r, R_FLOOR)), ux, uy, cos, sin], axis=1)


def fit_quantile_map(values: np.ndarray, weights: np.ndarray, knots: int, g_inner: float = 3.0,
                     g_outer: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(t, g)`` of a monotone piecewise-linear map from ``values`` to ~N(0, 1).

    ``knots - 2`` inner knots sit at the weighted quantiles Phi(g) for g evenly spaced in
    [-g_inner, g_inner]; the outer two at the sample minimum and maximum, mapped to
    -+g_outer (4: about the extreme of 4e4 normal draws, so the linear continuation
    beyond is no steeper than the outer segment).  Tied quantiles (discrete values) are
    separated by 1e-6 of the range so the map stays strictly increasing (the inverse
    then has a near-flat segment there).
    """
    import scipy.stats

    g = np.concatenate([[-g_outer], np.linspace(-g_inner, g_inner, knots - 2), [g_outer]])
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    t = np.interp(scipy.stats.norm.cdf(g), cdf, v)
    t[0], t[-1] = v[0], v[-1]
    gap = 1e-6 * (v[-1] - v[0])
    for k in range(1, len(t)):
        t[k] = max(t[k], t[k - 1] + gap)
    return t, g


def apply_quantile_map(values: np.ndarray, t: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The piecewise-linear map through knots ``(t, g)``, extended linearly beyond the outer knots (numpy)."""
    lo = g[0] + (values - t[0]) * (g[1] - g[0]) / (t[1] - t[0])
    hi = g[-1] + (values - t[-1]) * (g[-1] - g[-2]) / (t[-1] - t[-2])
    return np.where(values < t[0], lo, np.where(values > t[-1], hi, np.interp(values, t, g)))


def relu_form(x_knots: np.ndarray, y_knots: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``(a0, b, hinges, c)`` with f(x) = a0 + b x + sum_k c_k relu(x - hinge_k) through the knots."""
    slopes = np.diff(y_knots) / np.diff(x_knots)
    b = slopes[0]
    a0 = y_knots[0] - b * x_knots[0]
    return float(a0), float(b), x_knots[1:-1].copy(), np.diff(slopes)


def _step(t: torch.Tensor) -> torch.Tensor:
    """1 for t > 0, 0 for t <= 0 (exactly, unless 0 < t < 1e-9), from Relu arithmetic: min(relu(k t), 1)."""
    return 1.0 - torch.relu(1.0 - torch.relu(t * _STEEP))


def leaky_mlp(n_in: int, n_out: int, hidden: int, layers: int, slope: float) -> nn.Sequential:
    """``layers`` hidden Linear + LeakyReLU(``slope``) layers of width ``hidden``, then a Linear output."""
    modules: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.LeakyReLU(slope)]
        width = hidden
    modules.append(nn.Linear(width, n_out))
    return nn.Sequential(*modules)


class MappedFeatureModule(nn.Module):
    """Buffers and arithmetic shared by the target generators (`MuonGenerator`, the flow of
    ``flow-target``): feature standardisation, class edges, the inverse Gaussianising maps
    and the class one-hot, all as SOFIE-readable operations."""

    def _register_maps(self, knots: int) -> None:
        self.register_buffer("feature_mean", torch.zeros(N_FEATURES))
        self.register_buffer("feature_std", torch.ones(N_FEATURES))
        self.register_buffer("class_edges", torch.tensor([0.25, 0.5, 0.75]))  # cumulative class probabilities
        # inverse Gaussianising maps g -> feature of features 0-3, in relu form (identity until set):
        # f = inv_offset + inv_slope * g + relu(g @ inv_select - inv_hinges) @ inv_coef
        self.knots = knots
        hinges = N_MAPPED * (knots - 2)
        self.register_buffer("inv_offset", torch.zeros(N_MAPPED))
        self.register_buffer("inv_slope", torch.ones(N_MAPPED))
        self.register_buffer("inv_select", torch.repeat_interleave(torch.eye(N_MAPPED), knots - 2, dim=1))
        self.register_buffer("inv_hinges", torch.zeros(hinges))
        self.register_buffer("inv_coef", torch.zeros(hinges, N_MAPPED))

    def set_quantile_maps(self, maps: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Store the inverse (g -> feature) of the ``N_MAPPED`` maps ``(t, g)`` from `fit_quantile_map`."""
        inner = self.knots - 2
        coef = torch.zeros(N_MAPPED * inner, N_MAPPED, dtype=torch.float64)
        for j, (t, g) in enumerate(maps):
            a0, b, hinges, c = relu_form(g, t)
            self.inv_offset[j], self.inv_slope[j] = a0, b
            self.inv_hinges[j * inner:(j + 1) * inner] = torch.as_tensor(hinges)
            coef[j * inner:(j + 1) * inner, j] = torch.as_tensor(c)
        self.inv_coef.copy_(coef)

    def inverse_map(self, g: torch.Tensor) -> torch.Tensor:
        """Gaussianised ``[n, N_MAPPED]`` -> physics features 0-3 (MatMul, Sub, Relu, Mul, Add)."""
        hinge = torch.relu(torch.matmul(g, self.inv_select) - self.inv_hinges)
        return self.inv_offset + self.inv_slope * g + torch.matmul(hinge, self.inv_coef)

    def one_hot(self, u: torch.Tensor) -> torch.Tensor:
        """Class one-hot ``[n, 4]`` from uniforms ``u`` ``[n, 1]``."""
        above = _step(u - self.class_edges.view(1, -1))  # [n, 3]: u above each edge
        zeros = u * 0.0  # arithmetic, not ConstantOfShape, for SOFIE
        lower = torch.cat([zeros + 1.0, above], dim=1)
        upper = torch.cat([above, zeros], dim=1)
        return lower - upper

    def muon_state(self, features: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Standardised features ``[n, 8]`` (0-3 Gaussianised, 4-7 unit-vector components) and the
        class one-hot -> muons ``[n, 7]``: x, y, z [cm], px, py, pz [GeV/c], PDG id."""
        f = self.inverse_map(features[:, :N_MAPPED])
        ux, uy, cos, sin = (features[:, j:j + 1] * self.feature_std[j] + self.feature_mean[j]
                            for j in range(N_MAPPED, N_FEATURES))
        pz, pt = torch.exp(f[:, 0:1]), torch.exp(f[:, 1:2])
        z, r = torch.exp(f[:, 2:3]), torch.exp(f[:, 3:4])
        px, py = pt * ux, pt * uy
        x = r * (cos * ux - sin * uy)
        y = r * (cos * uy + sin * ux)
        charge = 2.0 * (onehot[:, 1:2] + onehot[:, 3:4]) - 1.0
        pdg = charge * -13.0
        return torch.cat([x, y, z, px, py, pz, pdg], dim=1)

    def generate(self, noise: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
        """`forward` over row chunks of ``noise``: the same muons, several times faster for
        large n on a CPU, as the chunk's activations stay in cache (each row is independent)."""
        if len(noise) <= chunk_size:
            return self(noise)
        return torch.cat([self(part) for part in noise.split(chunk_size)])


class MuonGenerator(MappedFeatureModule):
    """Noise ``[n, noise_dim + 1]`` -> muons ``[n, 7]``: x, y, z [cm], px, py, pz [GeV/c], PDG id (float).

    The first ``noise_dim`` noise columns are standard normal, the last one uniform in
    [0, 1) and picks the class.  Deterministic; everything after the noise is inside.
    """

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        self.net = leaky_mlp(config.noise_dim + N_CLASSES, N_FEATURES, config.hidden, config.layers,
                             config.negative_slope)
        self._register_maps(config.knots)

    @property
    def noise_width(self) -> int:
        """Noise columns per muon: ``noise_dim`` normals and the class uniform."""
        return self.config.noise_dim + 1

    def raw(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised critic-space features (direction normalised) and the one-hot."""
        onehot = self.one_hot(noise[:, -1:])
        return self.conditional(noise[:, :-1], onehot), onehot

    def conditional(self, gauss: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Standardised critic-space features for Gaussian noise and given classes."""
        out = self.net(torch.cat([gauss, onehot], dim=1))
        mean, std = self.feature_mean, self.feature_std
        directions = []
        for j in (N_MAPPED, N_MAPPED + 2):  # (cos phi, sin phi), (cos dphi, sin dphi): unit vectors
            a, b = out[:, j:j + 1], out[:, j + 1:j + 2]
            norm = torch.sqrt(a * a + b * b + 1e-8)
            directions += [(a / norm - mean[j]) / std[j], (b / norm - mean[j + 1]) / std[j + 1]]
        return torch.cat([out[:, :N_MAPPED], *directions], dim=1)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        features, onehot = self.raw(noise)
        return self.muon_state(features, onehot)


class Critic(nn.Module):
    """WGAN critic on standardised features plus the class one-hot (no normalisation layers)."""

    def __init__(self, hidden: int = 256, layers: int = 3, slope: float = 0.2):
        super().__init__()
        self.net = leaky_mlp(N_FEATURES + N_CLASSES, 1, hidden, layers, slope)

    def forward(self, features: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, onehot], dim=1)).squeeze(1)


def _sidecar(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_generator(generator: MappedFeatureModule, weights_path: str | Path, metadata: dict,
                   model: str = "gan-target") -> Path:
    """Write the weights (safetensors) and, beside them, a JSON with the architecture
    (``generator.config``) and ``metadata``; ``model`` names the component in the file."""
    from safetensors.torch import save_file

    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().float() for k, v in generator.state_dict().items()}
    save_file(state, str(weights_path), metadata={"format": "pt", "model": model})
    document = {"architecture": generator.config.to_dict()} | metadata
    _sidecar(weights_path).write_text(json.dumps(document, indent=1, default=float) + "\n")
    return weights_path


def load_module(weights_path: str | Path, build, device: torch.device | str = "cpu"):
    """``build(architecture dict)`` with the weights of ``weights_path`` loaded (safetensors and
    its JSON sidecar: no pickle), in eval mode on ``device``."""
    from safetensors.torch import load_file

    document = json.loads(_sidecar(weights_path).read_text())
    module = build(document["architecture"])
    module.load_state_dict(load_file(str(weights_path)))
    return module.to(device).eval().requires_grad_(False)


def load_generator(weights_path: str | Path, device: torch.device | str = "cpu") -> MuonGenerator:
    """A `MuonGenerator` in eval mode from a safetensors file and its JSON sidecar."""
    return load_module(weights_path, lambda architecture: MuonGenerator(GanConfig(**architecture)), device)
