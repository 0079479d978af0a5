"""A third-party shipfastsim plugin: a particle gun of muons.

Muons start at (0, 0, z0) with momentum |p| drawn from a Gaussian around
``momentum`` and a direction within a cone of half-angle ``theta_max`` about the
beam.  Installing this package registers it through the ``shipfastsim`` entry-point
group (see pyproject.toml); ``shipfastsim plugins`` then lists ``particle-gun``.
"""

from __future__ import annotations

import math

import torch

from shipfastsim import ChunkContext, ComponentSpec, MuonBatch, Parameter, Stage, hookimpl

GUN = ComponentSpec(
    name="particle-gun",
    kind="generator",
    description="Muons from a point with Gaussian |p| in a cone about the beam (example plugin)",
    parameters=(
        Parameter("momentum", "float", 100.0, "mean momentum [GeV/c]", minimum=0.0),
        Parameter("momentum_spread", "float", 0.0, "Gaussian sigma of |p| [GeV/c]", minimum=0.0),
        Parameter("theta_max", "float", 0.0, "half-angle of the cone about +z [rad]", minimum=0.0),
        Parameter("charge", "choice", "both", "mu+, mu- or both with equal probability",
                  choices=("mu+", "mu-", "both")),
        Parameter("z0", "float", 0.0, "start z in FairShip's frame [cm]"),
    ),
)


@hookimpl
def shipfastsim_declare_components():
    return [GUN]


@hookimpl
def shipfastsim_generate_muons(stage: Stage, n_muons: int, context: ChunkContext):
    if stage.component != GUN.name:
        return None
    params, g = stage.params, context.generator
    options = dict(generator=g, device=g.device, dtype=torch.float64)
    p = (params["momentum"] + params["momentum_spread"] * torch.randn(n_muons, **options)).abs()
    # Uniform in solid angle within the cone.
    cos_theta = 1 - torch.rand(n_muons, **options) * (1 - math.cos(params["theta_max"]))
    phi = 2 * math.pi * torch.rand(n_muons, **options)
    sin_theta = torch.sqrt(1 - cos_theta**2)
    if params["charge"] == "both":
        pdg = torch.where(torch.rand(n_muons, **options) < 0.5, 13, -13)
    else:
        pdg = torch.full((n_muons,), 13 if params["charge"] == "mu-" else -13)
    zeros = torch.zeros(n_muons, dtype=torch.float64)
    return MuonBatch.from_columns(
        {"pdg_id": pdg, "x": zeros, "y": zeros, "z": zeros + params["z0"],
         "px": p * sin_theta * torch.cos(phi), "py": p * sin_theta * torch.sin(phi), "pz": p * cos_theta,
         "event_id": torch.arange(context.first_muon, context.first_muon + n_muons)},
        device=stage.device,
    )
