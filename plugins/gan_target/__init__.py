"""Generator ``gan-target``: muons at their production point in the SHiP target from a GAN.

A conditional WGAN-GP (see `model` and `train`) trained on the SHiP muon-GAN sample
maps seeded noise to x, y, z [cm, FairShip frame], px, py, pz [GeV/c] and the PDG id
(+-13), weight 1.  The bundled weights (``gan_target.safetensors`` with its JSON
training config beside it) are the default; ``shipfastsim train gan-target``
makes new ones.  The same deterministic module (noise in, muons out) serves the
torch backend, the onnxruntime backend and the ONNX/SOFIE export.  Both backends run
it over chunks of `CHUNK_SIZE` rows (rows are independent, so the muons do not depend
on the chunking): on a CPU the hidden activations of a chunk stay in cache, which is
several times faster than one pass over 10^6 rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipfastsim.components import (
    ChunkContext,
    ComponentSpec,
    ExportDescription,
    Parameter,
    SampleNormalisation,
    Stage,
)
from shipfastsim.hookspecs import hookimpl
from shipfastsim.units import PDG_MU_MINUS, PDG_MU_PLUS

# torch and the model are imported where used: `shipfastsim train --help` imports this
# package and must not wait for torch.
if TYPE_CHECKING:
    import torch

    from shipfastsim.batch import MuonBatch
    from shipfastsim.plugins.gan_target.model import MuonGenerator

__all__ = ["COMPONENT", "BUNDLED_WEIGHTS", "CHUNK_SIZE", "TRAINING_SAMPLE_NORMALISATION", "model_normalisation",
           "MUON_STATE_FLOORS", "draw_noise", "redraw_rejected",
           "above_beam", "redraw_above_beam", "muons_from_state", "run_chunked", "generate_target_muons",
           "describe_target_module"]

#: Rows per network call: activations of 4096 x 96 floats (1.5 MB) stay in cache; measured
#: fastest of 1k-16k rows on the development CPU (1.33 M/s per core vs 1.12 M/s at 16k).
CHUNK_SIZE = 4096

#: The bundled model's weights (trained on the shared 50k SHiP GAN sample).
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "gan_target.safetensors"

#: What the training sample stands for.  The shared 50k sample is MSO_output/MSO_muons.root
#: of alexmarshallbristol/muGAN, written by Generation_Muon_Shield_Optimisation.py: the
#: SHiP muon GAN (arXiv:1909.04451) sampled with *boosted* auxiliary inputs (11 % of the
#: muons pushed to larger pT) for muon-shield optimisation, every w = 1.  Neither the
#: repository nor the paper gives the protons on target such an enhanced sample stands for,
#: and its enhancement carries no weights that would undo it: the factor is unknown.
TRAINING_SAMPLE_NORMALISATION = SampleNormalisation(
    None, "trained on the momentum/pT-enhanced muon-shield-optimisation sample MSO_muons.root of "
          "alexmarshallbristol/muGAN (SHiP GAN arXiv:1909.04451 with boosted auxiliary inputs, w = 1); "
          "no POT normalisation is published for it")


def model_normalisation(params: dict[str, Any]) -> SampleNormalisation:
    """The normalisation of a target generator's model ``params["weights"]``: what its JSON
    records (``shipfastsim train ... --weights-spill-pot POT`` writes muons_per_pot =
    sum(w) / POT of the training files), else, for the bundled models trained before
    it was recorded, `TRAINING_SAMPLE_NORMALISATION`."""
    import json

    sidecar = Path(params["weights"]).with_suffix(".json")
    try:
        recorded = json.loads(sidecar.read_text()).get("normalisation")
    except (OSError, ValueError):
        recorded = None  # the run's own checks report a missing or unreadable model
    if not recorded:
        return TRAINING_SAMPLE_NORMALISATION
    return SampleNormalisation(recorded.get("muons_per_pot"), recorded.get("source", f"recorded in {sidecar}"))


COMPONENT = ComponentSpec(
    name="gan-target",
    kind="generator",
    description="Muons at their production point in the target from a conditional WGAN (cm, GeV/c, weight 1)",
    parameters=(
        Parameter("weights", "path", str(BUNDLED_WEIGHTS), "generator weights (.safetensors, JSON config beside)",
                  content="safetensors"),
        Parameter("backend", "choice", "torch", "inference engine", choices=("torch", "onnxruntime")),
        Parameter("dtype", "choice", "float32", "network precision on the device", choices=("float32", "float64")),
        Parameter("target_z0", "float", 0.0, "z of the target start in FairShip's frame [cm], added to z"),
    ),
    normalisation=lambda params: model_normalisation(COMPONENT.defaults() | params),
)


#: Agreement floors of the exported muon state (`ExportDescription.floors`), shared by the target
#: generators.  Engines agree to 1e-5 relative per element; x, y (and px, py) are components of a
#: transverse vector rotated by an azimuth, near 0 only by cancellation of terms of the vector's
#: size, so their floor is that size, r (pT) of the same muon.  z, pz come out of Exp and the PDG
#: id is exact: no floor.
MUON_STATE_FLOORS = {"muon": ((0, 1), (0, 1), 0.0, (3, 4), (3, 4), 0.0, 0.0)}


def draw_noise(n: int, noise_dim: int, generator: torch.Generator) -> torch.Tensor:
    """Noise ``[n, noise_dim + 1]`` on the random generator's device: normals, then one uniform."""
    import torch

    device = generator.device
    return torch.cat([torch.randn(n, noise_dim, generator=generator, device=device),
                      torch.rand(n, 1, generator=generator, device=device)], dim=1)


def run_chunked(engine, noise: torch.Tensor, chunk_size: int = CHUNK_SIZE) -> torch.Tensor:
    """``engine(noise)`` over row chunks of ``noise``, concatenated.

    Every call gets exactly ``chunk_size`` rows in a fresh contiguous buffer (the last
    chunk padded with zero rows, whose outputs are dropped): BLAS picks its kernels by
    shape (MKL's sgemm gives other float32 roundings for 1-4 rows than for 5 or more,
    which the steep inverse maps amplify to 1e-2 in x), so a row's output must not
    depend on how many rows share its call.  With this, a chunk's muons are a function
    of its noise alone, whatever the chunk size or the process state.
    """
    import torch

    outputs = []
    for part in noise.split(chunk_size):
        block = noise.new_zeros((chunk_size, *noise.shape[1:]))
        block[: len(part)] = part
        outputs.append(torch.as_tensor(engine(block))[: len(part)])
    if not outputs:
        return torch.as_tensor(engine(noise))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def muons_from_state(state: torch.Tensor, first_muon: int, device: torch.device, target_z0: float = 0.0) -> MuonBatch:
    """Generator output ``[n, 7]`` (x, y, z, px, py, pz, pdg) to a `MuonBatch` with global event ids."""
    import torch

    from shipfastsim.batch import MuonBatch

    state = state.to(device=device, dtype=torch.float64)
    n = state.shape[0]
    pdg = torch.where(state[:, 6] < 0, PDG_MU_PLUS, PDG_MU_MINUS)
    columns: dict[str, Any] = {name: state[:, j] for j, name in enumerate(("x", "y", "z", "px", "py", "pz"))}
    if target_z0:
        columns["z"] = columns["z"] + target_z0
    columns |= {"pdg_id": pdg, "pythia_id": pdg,
                "event_id": torch.arange(first_muon, first_muon + n, device=device, dtype=torch.int64)}
    return MuonBatch.from_columns(columns, device=device)


def _load(weights: str | Path, device) -> MuonGenerator:
    from shipfastsim.plugins.gan_target.model import load_generator

    return load_generator(weights, device)


def generate_target_muons(spec: ComponentSpec, load, version: str, stage: Stage, n_muons: int,
                          context: ChunkContext) -> MuonBatch:
    """Muons of a target generator (gan-target, flow-target) for one chunk: the module from
    ``load(weights, device)`` (cached on the stage, in the ``dtype`` asked for, through the
    ``backend`` asked for), seeded noise from the chunk's generator, row chunks of `CHUNK_SIZE`."""
    import torch

    params = spec.defaults() | stage.params

    def build():
        dtype = torch.float64 if params["dtype"] == "float64" else torch.float32
        module = load(params["weights"], stage.device).to(dtype)
        if params["backend"] == "onnxruntime":
            from shipfastsim.adapters.onnx_runtime import OnnxRuntimeModule  # provided by the ONNX adapter

            return module, OnnxRuntimeModule(describe_target_module(module, params["weights"], version))
        return module, module

    module, engine = stage.cached("model", build)

    def generate(n: int) -> torch.Tensor:
        noise = draw_noise(n, module.noise_width - 1, context.generator)
        with torch.inference_mode():
            return run_chunked(engine, noise.to(device=stage.device, dtype=module.feature_mean.dtype))

    state = redraw_above_beam(generate(n_muons), generate)
    return muons_from_state(state, context.first_muon, stage.device, params["target_z0"])


def redraw_rejected(state: torch.Tensor, generate, rejected, attempts: int = 100, what: str = "rejected",
                    by_row: bool = False) -> torch.Tensor:
    """``state`` with every row for which ``rejected(rows)`` (a bool per row) is true replaced
    by a row of ``generate(n)``, drawn after the chunk's own noise: the other rows are
    untouched, and the chunk stays a function of its seed.  Sampling this way draws from
    the generator's distribution restricted to the accepted rows, exactly.  ``by_row``:
    ``generate`` gets the indices of the rows to redraw instead of their number (for a
    generator conditioned per row)."""
    import torch

    bad = torch.nonzero(rejected(state)).squeeze(1)
    if not len(bad):
        return state
    state = state.clone()
    for _ in range(attempts):  # later rounds check only the rows just redrawn
        state[bad] = generate(bad if by_row else len(bad)).to(state.dtype)
        bad = bad[rejected(state[bad])]
        if not len(bad):
            return state
    raise RuntimeError(f"{len(bad)} muons still {what} after {attempts} redraws")


def above_beam(rows: torch.Tensor, columns: slice = slice(3, 6)) -> torch.Tensor:
    """Whether each row's momentum (``columns``: px, py, pz [GeV/c]) exceeds `BEAM_MOMENTUM`."""
    import torch

    from shipfastsim.units import BEAM_MOMENTUM

    return torch.linalg.norm(rows[:, columns].double(), dim=1) > BEAM_MOMENTUM


def redraw_above_beam(state: torch.Tensor, generate, columns: slice = slice(3, 6), attempts: int = 100
                      ) -> torch.Tensor:
    """``state`` with every row whose momentum (``columns``: px, py, pz [GeV/c]) exceeds
    `BEAM_MOMENTUM` redrawn (`redraw_rejected`).  (A generator's tail can reach beyond the
    beam momentum, which no muon from the target can.)"""
    return redraw_rejected(state, generate, lambda rows: above_beam(rows, columns), attempts,
                           "above the beam momentum")


def describe_target_module(module, weights: str | Path, version: str) -> ExportDescription:
    """The export description of a target generator's module: noise [n, noise_width] in, muons [n, 7] out."""
    import torch

    normals = module.noise_width - 1
    example = torch.cat([torch.randn(4, normals), torch.rand(4, 1)], dim=1).to(module.feature_mean.dtype)
    return ExportDescription(
        module=module.cpu().eval(),
        input_names=("noise",),
        output_names=("muon",),
        example_inputs=(example,),
        units={"noise": f"[n, {normals + 1}]: {normals} standard normals, then one uniform in [0, 1)",
               "muon": "[n, 7]: x, y, z [cm, FairShip frame, target start at 0], px, py, pz [GeV/c], PDG id (+-13)"},
        version=version,
        weights_path=str(weights),
        floors=MUON_STATE_FLOORS,
    )


#: Version of the exported graph (2: log pT and the pT azimuth in place of px, py).
EXPORT_VERSION = "gan-target-2"


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
