"""Neural cases shared by the ONNX and SOFIE tests.

Every registered component whose export hook answers (e.g. ``gan-target``) is a
case, plus small test-only components registered by `ToyPlugin` on a separate
plugin manager, so that the machinery is tested whether or not a bundled neural
component is exportable:

* ``toy-flow`` (generator): affine-coupling flow, noise [n, 6] -> state [n, 6]
  with an affine "inverse preprocessing" at the end (Gemm, Relu, Tanh, Exp, Mul,
  Add, Slice, Concat);
* ``toy-classifier`` (filter): two inputs (momentum [n, 3], position [n, 3]) to
  two outputs (probability [n, 1], logit [n, 1]) through LeakyRelu and Sigmoid;
* ``toy-sign`` (generator): uses ``torch.sign``, an operator SOFIE lacks;
* ``toy-gun`` (generator): declared but not neural.

Agreement criterion (`max_deviation`): element by element ``|a - b| / max(|b|, floor)``
below `RTOL` = 1e-5, a true relative tolerance.  ``floor`` is the column's declared
absolute scale (`ExportDescription.floors`, justified where declared), 0 when none is
declared: only a column that can come near 0 through cancellation of larger terms gets
one.  The old criterion used the column's largest |value| as floor, under which
gan-target's prompt muons (|x| ~ 1e-5 cm against a 6 cm column maximum) could be zeroed
unseen; `test_agreement_criterion_sees_zeroed_prompt_positions` guards against that.
"""

from __future__ import annotations

import copy

import numpy as np
import pluggy
import torch
from torch import nn

from shipfastsim import hookspecs
from shipfastsim.adapters.onnx_export import exportable_components
from shipfastsim.adapters.sofie_codegen import sample_graph_inputs
from shipfastsim.components import ComponentSpec, ExportDescription, Parameter
from shipfastsim.hookspecs import hookimpl
from shipfastsim.registry import ComponentRegistry, get_registry

RTOL = 1e-5
N_ROWS = 1024


class Coupling(nn.Module):
    def __init__(self, dim: int, hidden: int, flip: bool):
        super().__init__()
        self.half, self.flip = dim // 2, flip
        self.net = nn.Sequential(nn.Linear(self.half, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * (dim - self.half)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a, b = z[:, : self.half], z[:, self.half:]
        if self.flip:
            a, b = b, a
        st = self.net(a)
        scale, shift = torch.tanh(st[:, : b.shape[1]]), st[:, b.shape[1]:]
        b = b * torch.exp(scale) + shift
        return torch.cat([b, a] if self.flip else [a, b], dim=1)


class AffineFlow(nn.Module):
    """Noise -> physical state: 4 affine couplings then the inverse of a standardisation."""

    def __init__(self, dim: int = 6, hidden: int = 32, layers: int = 4):
        super().__init__()
        self.couplings = nn.ModuleList(Coupling(dim, hidden, i % 2 == 1) for i in range(layers))
        self.register_buffer("std", torch.tensor([1.5, 1.5, 60.0, 0.8, 0.8, 40.0]))
        self.register_buffer("mean", torch.tensor([0.0, 0.0, 100.0, 0.0, 0.0, 50.0]))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        for coupling in self.couplings:
            noise = coupling(noise)
        return noise * self.std + self.mean


class Classifier(nn.Module):
    """Kinematics in, keep probability out (two inputs, two outputs)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 24), nn.LeakyReLU(0.1), nn.Linear(24, 24), nn.LeakyReLU(0.1),
                                 nn.Linear(24, 1))
        self.register_buffer("scale", torch.tensor([2.0, 2.0, 50.0, 10.0, 10.0, 100.0]))

    def forward(self, momentum: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.net(torch.cat([momentum, position], dim=1) / self.scale)
        return torch.sigmoid(logit), logit


class SignModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        u = self.linear(noise)
        return torch.sign(u) * u * u


def _description(name: str, seed: int = 7) -> ExportDescription:
    torch.manual_seed(seed)
    if name == "toy-flow":
        flow = AffineFlow().eval()
        # state = std * u + mean: near 0 only by cancellation of terms of size |mean| + std
        # (float32 rounds them to ~6e-8 of that), so that is each column's floor.
        floors = tuple(float(m) for m in (flow.mean.abs() + flow.std))
        return ExportDescription(flow, ("noise",), ("state",), (torch.randn(4, 6),),
                                 {"noise": "[n, 6]: N(0,1)", "state": "[n, 6]: x, y, z [cm], px, py, pz [GeV/c]"},
                                 version="toy-flow-1", floors={"state": floors})
    if name == "toy-classifier":
        # probability is a sigmoid (no cancellation: pure relative); the logit is a sum of
        # O(1) terms that crosses 0, so its floor is 1 (the size of those terms).
        return ExportDescription(Classifier().eval(), ("momentum", "position"), ("probability", "logit"),
                                 (torch.randn(4, 3), torch.randn(4, 3)),
                                 {"momentum": "px, py, pz [GeV/c]", "position": "x, y, z [cm]",
                                  "probability": "keep probability", "logit": "log-odds"}, version="toy-classifier-1",
                                 floors={"probability": (0.0,), "logit": (1.0,)})
    return ExportDescription(SignModel().eval(), ("noise",), ("out",), (torch.randn(4, 3),), version="toy-sign-1")


class ToyPlugin:
    """Test-only neural components (see the module docstring)."""

    @hookimpl
    def shipfastsim_declare_components(self) -> list[ComponentSpec]:
        return [ComponentSpec("toy-flow", "generator", "test flow", (Parameter("seed", "int", 7, "weights seed"),)),
                ComponentSpec("toy-sign", "generator", "sign"),
                ComponentSpec("toy-gun", "generator", "not neural"),
                ComponentSpec("toy-classifier", "filter", "test classifier")]

    @hookimpl
    def shipfastsim_export_description(self, component: str, params: dict) -> ExportDescription | None:
        if component in ("toy-flow", "toy-classifier", "toy-sign"):
            return _description(component, int(params.get("seed", 7)))
        return None


def toy_registry() -> ComponentRegistry:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(ToyPlugin(), name="toy")
    return ComponentRegistry(manager)


TOY_CASES = ("toy-flow", "toy-classifier")


def cases() -> list[tuple[str, ComponentRegistry]]:
    """(component, registry) for every exportable registered component and the toy ones.

    A registered component whose export hook raises with its default parameters is a
    case too, so that the tests fail on it instead of leaving it out.
    """
    errors: dict[str, str] = {}
    names = set(exportable_components(get_registry(), errors)) | set(errors)
    registered = [(name, get_registry()) for name in sorted(names)]
    return registered + [(name, toy_registry()) for name in TOY_CASES]


def case_ids() -> list[str]:
    return [name for name, _ in cases()]


def sample_inputs(description: ExportDescription, n: int = N_ROWS, seed: int = 3) -> list[np.ndarray]:
    """Inputs of ``n`` rows drawn per column as the units say (N(0,1) unless U(0,1) is declared)."""
    return sample_graph_inputs(description, n, seed)


def torch_outputs(description: ExportDescription, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The exported module's outputs computed in float64 from the float32 inputs: the
    exact function the float32 engines (onnxruntime, SOFIE C++) approximate, rather than
    torch's own float32 rounding, which differs from theirs by summation order."""
    module = copy.deepcopy(description.module).eval().double()
    with torch.no_grad():
        out = module(*[torch.from_numpy(a).double() for a in inputs])
    out = out if isinstance(out, tuple | list) else (out,)
    return [o.detach().cpu().float().numpy() for o in out]


def floors(description: ExportDescription, output: int | str, reference: np.ndarray) -> np.ndarray:
    """Per-element floors ``[n, columns]`` of one output from its declared floors (zeros where
    none is declared); a floor given as column indices is their norm in the same row."""
    name = description.output_names[output] if isinstance(output, int) else output
    table = reference.reshape(len(reference), -1).astype(np.float64)
    declared = description.floors.get(name)
    if declared is None:
        return np.zeros_like(table)
    assert len(declared) == table.shape[1], f"{name}: {len(declared)} floors for {table.shape[1]} columns"
    columns = [np.linalg.norm(table[:, list(f)], axis=1) if isinstance(f, tuple) else np.full(len(table), float(f))
               for f in declared]
    return np.stack(columns, axis=1) if columns else np.zeros_like(table)


def max_deviation(values: np.ndarray, reference: np.ndarray, floor: np.ndarray | None = None) -> float:
    """Largest ``|a - b| / max(|b|, floor)`` over the elements (columns: the last axes
    flattened; ``floor`` per column or per element)."""
    values = values.reshape(len(values), -1).astype(np.float64)
    reference = reference.reshape(len(reference), -1).astype(np.float64)
    assert values.shape == reference.shape
    floor = np.zeros_like(reference) if floor is None else floor
    scale = np.maximum(np.abs(reference), floor)
    difference = np.abs(values - reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        # where the reference is exactly 0 without a floor, only exact agreement counts
        ratio = np.where(scale > 0, difference / scale, np.where(difference > 0, np.inf, 0.0))
    return float(ratio.max()) if ratio.size else 0.0


def deviation(description: ExportDescription, output: int | str, values: np.ndarray, reference: np.ndarray) -> float:
    """`max_deviation` of one output with its declared floors."""
    return max_deviation(values, reference, floors(description, output, reference))
