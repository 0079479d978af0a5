"""The dangerous-muon classifier: kinematics in, calibrated log-odds out.

`FilterNet` maps the state of a muon at its production point in the target,

    [x, y, z, px, py, pz, charge]      (cm, FairShip frame; GeV/c; e)

to the calibrated log-odds (logit) that it reaches the chosen label (see `labels`: by
default P1, crossing the decay-vessel entrance inside its aperture); the probability
is its sigmoid (`FilterNet.probability`).  Everything is inside the module, so the
ONNX graph carries it too:

1. derived features (`FEATURE_NAMES`): the raw columns plus log p, log pT, the
   direction cosines px/p, py/p and their products with the charge, and charge * x,
   charge * y.  The shield's field bends mu+ and mu- in opposite x directions, so
   charge-signed quantities are what a small network needs; direction cosines rather
   than px/pz keep every feature bounded for any input (pz may be ~0 in export tests);
2. standardisation with the training mean and standard deviation (buffers);
3. an MLP (``layers`` x ``hidden``, ReLU) giving a logit;
4. Platt calibration ``a * logit + b`` fitted on the validation split (the training
   loss up-weights the rare dangerous class, which shifts raw scores).

The graph ends at the calibrated log-odds rather than the probability: probabilities
of ~1e-4 are resolved only relatively, and inference engines compute Sigmoid to an
absolute precision (onnxruntime's approximation differs from SOFIE's exact one by
~1e-8, i.e. 1e-4 relative); thresholds compare log-odds equally well.

Weights are safetensors with a JSON sidecar (architecture, calibration, working-point
table, training record); nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["INPUT_COLUMNS", "FEATURE_NAMES", "FilterConfig", "FilterNet", "derived_features", "save_filter",
           "load_filter", "sidecar_path", "read_sidecar"]

#: Columns of the network input, in order (cm, GeV/c, e).
INPUT_COLUMNS = ("x", "y", "z", "px", "py", "pz", "charge")
#: Columns of `derived_features`, in order.
FEATURE_NAMES = ("x", "y", "z", "px", "py", "pz", "charge", "log_p", "log_pt", "ux", "uy", "q_ux", "q_uy", "q_x",
                 "q_y")
#: Floors that keep the logarithms finite for any input [GeV/c].
_P_FLOOR, _PT_FLOOR = 1e-3, 1e-2


@dataclass
class FilterConfig:
    """Architecture of `FilterNet` (saved beside the weights)."""

    hidden: int = 64
    layers: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def derived_features(state: torch.Tensor) -> torch.Tensor:
    """``[n, 7]`` input (`INPUT_COLUMNS`) -> ``[n, len(FEATURE_NAMES)]`` features."""
    x, y, z, px, py, pz, q = state.unbind(1)
    p = torch.sqrt(px * px + py * py + pz * pz + _P_FLOOR**2)
    pt = torch.sqrt(px * px + py * py + _PT_FLOOR**2)
    ux, uy = px / p, py / p
    return torch.stack([x, y, z, px, py, pz, q, torch.log(p), torch.log(pt), ux, uy, q * ux, q * uy, q * x, q * y],
                       dim=1)


class FilterNet(nn.Module):
    """Muon state ``[n, 7]`` -> calibrated log-odds ``[n, 1]`` (see the module docstring)."""

    def __init__(self, config: FilterConfig):
        super().__init__()
        self.config = config
        n = len(FEATURE_NAMES)
        self.register_buffer("feature_mean", torch.zeros(n))
        self.register_buffer("feature_std", torch.ones(n))
        # Platt calibration: calibrated log-odds = scale * logit + shift.
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))
        layers: list[nn.Module] = []
        width = n
        for _ in range(config.layers):
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Standardise with the mean and standard deviation of training ``features``."""
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-6))

    def logit(self, state: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logit ``[n, 1]`` (what the training loss sees)."""
        return self.net((derived_features(state) - self.feature_mean) / self.feature_std)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.logit(state) * self.calibration[0] + self.calibration[1]

    def probability(self, state: torch.Tensor) -> torch.Tensor:
        """Calibrated probability ``[n, 1]`` of the label."""
        return torch.sigmoid(self(state))


def sidecar_path(weights_path: str | Path) -> Path:
    """The JSON beside a weights file."""
    return Path(weights_path).with_suffix(".json")


def read_sidecar(weights_path: str | Path) -> dict:
    """The JSON sidecar of a weights file (architecture, label, working-point table, training record)."""
    path = sidecar_path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"mlp-filter weights {weights_path} have no JSON sidecar {path}")
    return json.loads(path.read_text())


def save_filter(net: FilterNet, weights_path: str | Path, metadata: dict) -> Path:
    """Write the weights (safetensors, float32) and the JSON sidecar with ``metadata``."""
    from shipfastsim.plugins.gan_target.model import save_generator

    return save_generator(net, weights_path, metadata, model="mlp-filter")


def load_filter(weights_path: str | Path, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> FilterNet:
    """A `FilterNet` in eval mode from a safetensors file and its JSON sidecar."""
    from safetensors.torch import load_file

    document = read_sidecar(weights_path)
    net = FilterNet(FilterConfig(**document["architecture"]))
    net.load_state_dict(load_file(str(weights_path)))
    return net.to(device=device, dtype=dtype).eval().requires_grad_(False)
