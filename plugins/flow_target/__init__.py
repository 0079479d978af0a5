"""Generator ``flow-target``: muons at their production point in the target from a normalising flow.

A class-conditional affine-coupling flow (`model`, trained by maximum likelihood in
`train`) on the same features, quantile maps, classes and train/validation/holdout
split as ``gan-target``, mapping seeded noise (8 standard normals and one uniform per
muon) to x, y, z [cm, FairShip frame], px, py, pz [GeV/c] and the PDG id (+-13),
weight 1.  The bundled weights (``flow_target.safetensors`` with its JSON training
config beside it) are the default; ``shipfastsim train flow-target`` makes new ones.
The same deterministic module serves the torch backend, the onnxruntime backend and
the ONNX/SOFIE export; inference runs over row chunks as gan-target's does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipfastsim.components import ChunkContext, ComponentSpec, ExportDescription, Parameter, Stage
from shipfastsim.hookspecs import hookimpl
from shipfastsim.plugins.gan_target import (
    describe_target_module,
    generate_target_muons,
    model_normalisation,
)

# torch and the model are imported where used: `shipfastsim train --help` must not wait for torch.
if TYPE_CHECKING:
    from shipfastsim.batch import MuonBatch
    from shipfastsim.plugins.flow_target.model import FlowGenerator

__all__ = ["COMPONENT", "BUNDLED_WEIGHTS"]

#: The bundled flow's weights (trained on the shared 50k SHiP GAN sample, like gan-target's).
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "flow_target.safetensors"

COMPONENT = ComponentSpec(
    name="flow-target",
    kind="generator",
    description="Muons at their production point in the target from a normalising flow (cm, GeV/c, weight 1)",
    parameters=(
        Parameter("weights", "path", str(BUNDLED_WEIGHTS), "flow weights (.safetensors, JSON config beside)",
                  content="safetensors"),
        Parameter("backend", "choice", "torch", "inference engine", choices=("torch", "onnxruntime")),
        Parameter("dtype", "choice", "float32", "network precision on the device", choices=("float32", "float64")),
        Parameter("target_z0", "float", 0.0, "z of the target start in FairShip's frame [cm], added to z"),
    ),
    normalisation=lambda params: model_normalisation(COMPONENT.defaults() | params),  # as gan-target's
)


def _load(weights: str | Path, device) -> FlowGenerator:
    from shipfastsim.plugins.flow_target.model import load_flow

    return load_flow(weights, device)


#: Version of the exported graph.
EXPORT_VERSION = "flow-target-1"


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [COMPONENT]


@hookimpl
def shipfastsim_generate_muons(stage: Stage, n_muons: int, context: ChunkContext) -> MuonBatch | None:
    if stage.component != COMPONENT.name:
        return None
    return generate_target_muons(COMPONENT, _load, EXPORT_VERSION, stage, n_muons, context)


@hookimpl
def shipfastsim_export_description(component: str, params: dict) -> ExportDescription | None:
    if component != COMPONENT.name:
        return None
    weights = (params or {}).get("weights", str(BUNDLED_WEIGHTS))
    return describe_target_module(_load(weights, "cpu"), weights, EXPORT_VERSION)
