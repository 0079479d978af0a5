"""What both flows of the package share: their model JSON, their rate, their noise and their output.

`model_sidecar` reads the JSON beside a flow's weights; `transported_rate` turns its
training transport's record into muons per POT.  `draw_noise`, `run_engine` and
`muons_from_output` are the sampling path of ``nf-after-shield`` and ``nf-decay-vessel``
alike: seeded noise, the engine in fixed-size blocks, the engine's output [n, 8] as a
`MuonBatch`.  Units: cm, GeV/c.  torch is imported where used (``shipfastsim --help``
imports the package and must not wait for it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipfastsim.components import SampleNormalisation
from shipfastsim.units import PDG_MU_MINUS, PDG_MU_PLUS

if TYPE_CHECKING:
    import torch

    from shipfastsim.batch import MuonBatch

__all__ = ["NOISE_WIDTH", "model_sidecar", "transported_rate", "draw_noise", "muons_from_output", "run_engine",
           "envelope", "outside_envelope"]

#: Noise columns per muon: 5 standard normals (latent), 1 uniform (charge).
NOISE_WIDTH = 6


def model_sidecar(weights: str | Path) -> dict[str, Any]:
    """The JSON beside a flow's weights (architecture, training record, ``data`` section)."""
    return json.loads(Path(weights).with_suffix(".json").read_text())


def transported_rate(weights: str | Path) -> tuple[SampleNormalisation, dict[str, Any]]:
    """Muons per POT at the shield end behind a model trained on transported muons: the
    training generator's (flow-target's) rate times the shield-end fraction of the training
    transport; with the model JSON's ``data`` section (counts and fractions)."""
    data = model_sidecar(weights)["data"]
    survival = data["shield_end_per_target_muon"]
    from shipfastsim.plugins.flow_target import COMPONENT as FLOW

    target = FLOW.normalisation(FLOW.defaults()) if FLOW.normalisation else SampleNormalisation(None, "not declared")
    if target.muons_per_pot is None:
        return SampleNormalisation(None, f"trained on transported flow-target muons, whose rate is unknown "
                                         f"(flow-target: {target.source}); shield-end fraction {survival:.4f}"), data
    return SampleNormalisation(target.muons_per_pot * survival,
                               f"flow-target ({target.source}) x shield-end fraction {survival:.4f} of the training "
                               "transport (fast-shield)"), data


def draw_noise(n: int, generator: torch.Generator) -> torch.Tensor:
    """Noise [n, 6] on the generator's device: 5 standard normals, then one uniform."""
    import torch

    device = generator.device
    return torch.cat([torch.randn(n, 5, generator=generator, device=device),
                      torch.rand(n, 1, generator=generator, device=device)], dim=1)


def muons_from_output(out: torch.Tensor, first_muon: int, device: torch.device, z_plane: float | None = None
                      ) -> MuonBatch:
    """Graph output [n, 8] (x, y, z, px, py, pz, PDG, weight) to a `MuonBatch` with global event ids;
    ``z_plane`` [cm] replaces the graph's float32 z by the plane's exact z."""
    import torch

    from shipfastsim.batch import MuonBatch

    out = out.to(device=device, dtype=torch.float64)
    n = out.shape[0]
    pdg = torch.where(out[:, 6] < 0, PDG_MU_PLUS, PDG_MU_MINUS)
    columns: dict[str, Any] = {name: out[:, j] for j, name in enumerate(("x", "y", "z", "px", "py", "pz"))}
    if z_plane is not None:
        columns["z"] = torch.full((n,), float(z_plane), dtype=torch.float64, device=device)
    columns |= {"pdg_id": pdg, "pythia_id": pdg, "weight": out[:, 7],
                "event_id": torch.arange(first_muon, first_muon + n, device=device, dtype=torch.int64)}
    return MuonBatch.from_columns(columns, device=device)


def run_engine(engine, noise: torch.Tensor) -> torch.Tensor:
    """Engine output [n, 8] for noise [n, 6]: `FastNoiseToMuon` makes its 4096-muon blocks
    itself (its [8, n] output transposed keeps columns contiguous), any other engine gets
    `run_chunked`'s fixed-size calls."""
    import torch

    from shipfastsim.plugins.gan_target import run_chunked
    from shipfastsim.plugins.nf_after_shield.fast import FastNoiseToMuon

    with torch.inference_mode():
        return engine.columns(noise).T if isinstance(engine, FastNoiseToMuon) else run_chunked(engine, noise)


def envelope(flow) -> tuple[torch.Tensor, torch.Tensor]:
    """The range of the flow's training sample in its features (x, y [cm], px/pz, py/pz,
    log pz [GeV/c]): the outer knots of its Gaussianising maps, which sit at the sample's
    minimum and maximum (`fit_quantile_map`); float64."""
    knots = flow.knots_f.double()
    return knots[:, 0], knots[:, -1]


def outside_envelope(rows: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Whether each engine row [n, 8] (x, y, z, px, py, pz, PDG, weight) lies outside the
    training sample's range (`envelope`), or has pz <= 0 or a non-finite value.  The flow's
    latent tails reach there (about 2-4 in 10^4 muons of the bundled models, some above the
    beam momentum): extrapolation beyond anything that was transported."""
    import torch

    r = rows.double()
    pz = r[:, 5]
    with torch.no_grad():
        features = torch.stack([r[:, 0], r[:, 1], r[:, 3] / pz, r[:, 4] / pz, torch.log(pz)], 1)
        inside = (pz > 0) & torch.isfinite(features).all(1) & ((features >= low.to(r.device))
                                                               & (features <= high.to(r.device))).all(1)
    return ~inside
