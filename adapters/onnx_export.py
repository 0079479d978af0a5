"""ONNX export of neural components and their JSON sidecar (onnxruntime inference: `onnx_runtime`).

A neural component describes its inference graph through the
``shipfastsim_export_description(component, params)`` hook (an `ExportDescription`:
a deterministic torch module from the inputs FairShip feeds, such as noise, to
physical outputs).  This module turns that description into

* ``<stem>.onnx``: the graph with named inputs and outputs, opset `OPSET`;
* ``<stem>.json``: a sidecar with names, shapes, units, version, operators,
  parameter count and sha256 hashes of the weights and the graph;
* with SOFIE (see `shipfastsim.adapters.sofie_codegen`), the C++ header and weights.

``<stem>`` is the component name with ``-`` replaced by ``_`` (a C++ identifier:
SOFIE names its namespace ``SOFIE_<stem>``).

Batch handling: by default axis 0 of every input and output is a dynamic axis named
`BATCH_AXIS` (onnxruntime takes any batch; the SOFIE session is built for a maximum
batch and infers any batch up to it).  ``batch=N`` exports a fixed batch of N instead
(SOFIE then allocates everything statically and infers exactly N rows per call).
Every input and output must be float32.

The export uses torch's TorchScript-based exporter (``dynamo=False``): it needs no
onnxscript and, with constant folding, yields the small operator set SOFIE reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from shipfastsim.adapters.onnx_errors import INSTALL_HINT, ExportError, require_package
from shipfastsim.components import ExportDescription

__all__ = [
    "OPSET",
    "BATCH_AXIS",
    "INSTALL_HINT",
    "ExportError",
    "ExportResult",
    "exportable_components",
    "get_export_description",
    "export_onnx_bytes",
    "export_onnx",
    "graph_operators",
    "parameter_count",
    "weights_sha256",
    "export_component",
]

#: ONNX opset of every exported graph (SOFIE's ONNX parser reads it; onnxruntime too).
OPSET = 17
#: Name of the dynamic batch axis (axis 0 of every input and output).
BATCH_AXIS = "batch"
def exportable_components(registry: Any = None, errors: dict[str, str] | None = None) -> dict[str, ExportDescription]:
    """Name -> `ExportDescription` of every registered component whose plugin answers the
    export hook for its default parameters; components whose hook raises are left out
    (and their error put in ``errors`` if given)."""
    if registry is None:
        from shipfastsim.registry import get_registry

        registry = get_registry()
    found: dict[str, ExportDescription] = {}
    for component in registry.all():
        try:
            description = registry.hook.shipfastsim_export_description(
                component=component.spec.name, params=component.spec.defaults()
            )
        except Exception as error:  # e.g. default weights not there: not exportable as it stands
            if errors is not None:
                errors[component.spec.name] = f"{type(error).__name__}: {error}"
            continue
        if description is not None:
            found[component.spec.name] = description
    return found


def get_export_description(component: str, params: dict | None = None, registry: Any = None) -> ExportDescription:
    """The `ExportDescription` of ``component`` (parameters default to the declared ones).

    Raises:
        ExportError: unknown or non-neural component; the message lists the exportable ones.
    """
    if registry is None:
        from shipfastsim.registry import get_registry

        registry = get_registry()
    specs = [c.spec for c in registry.all() if c.spec.name == component]
    description = None
    if specs:
        merged = specs[0].defaults() | dict(params or {})
        description = registry.hook.shipfastsim_export_description(component=component, params=merged)
    if description is None:
        errors: dict[str, str] = {}
        names = ", ".join(sorted(exportable_components(registry, errors))) or "none registered"
        if errors:
            names += "; failing with their defaults: " + "; ".join(f"{k} ({v})" for k, v in sorted(errors.items()))
        what = "is not a neural component" if specs else "is not a registered component"
        raise ExportError(f"{component!r} {what}; exportable components: {names}")
    return description


def _cpu_module(description: ExportDescription) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    module = description.module
    tensors = [*module.parameters(), *module.buffers()]
    if any(t.device.type != "cpu" or (t.is_floating_point() and t.dtype != torch.float32) for t in tensors):
        import copy  # the graph is float32 on the CPU; leave the caller's module as it is

        module = copy.deepcopy(module).to("cpu", torch.float32)
    inputs = tuple(t.detach().cpu().float() for t in description.example_inputs)
    return module.eval(), inputs


def export_onnx_bytes(description: ExportDescription, batch: int | None = None, opset: int = OPSET) -> bytes:
    """The serialised ONNX graph of ``description`` (dynamic batch unless ``batch`` is given)."""
    if len(description.example_inputs) != len(description.input_names):
        raise ExportError("the export description needs one example input per input name")
    module, inputs = _cpu_module(description)
    if batch is not None:
        if batch < 1:
            raise ExportError(f"batch must be positive, got {batch}")
        inputs = tuple(t[torch.arange(batch) % t.shape[0]] for t in inputs)
    axes = None
    if batch is None:
        axes = {name: {0: BATCH_AXIS} for name in (*description.input_names, *description.output_names)}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, inputs, buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
            input_names=list(description.input_names), output_names=list(description.output_names),
            dynamic_axes=axes,
        )
    onnx = require_package("onnx")
    model = onnx.load_from_string(buffer.getvalue())
    # The exporter may leave output dimensions symbolic (e.g. after Concat); write the
    # known ones, so that the graph documents them and SOFIE sizes its buffers statically.
    with torch.no_grad():
        results = module(*inputs)
    results = results if isinstance(results, tuple | list) else (results,)
    for value, result in zip(model.graph.output, results, strict=True):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != result.dim():
            raise ExportError(f"output {value.name!r} has rank {len(dims)} in the graph and {result.dim()} in torch")
        for axis, size in enumerate(result.shape):
            if axis > 0 or batch is not None:
                dims[axis].Clear()
                dims[axis].dim_value = int(size)
    model.doc_string = (f"shipfastsim export, model version {description.version}; batch axis 0 "
                        f"{'dynamic (' + BATCH_AXIS + ')' if batch is None else f'fixed at {batch}'}; float32")
    for key, value in {"shipfastsim.version": description.version,
                       "shipfastsim.units": json.dumps(description.units)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    for value in [*model.graph.input, *model.graph.output]:
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ExportError(f"graph tensor {value.name!r} is not float32; FairShip's interface is float32 only")
    return data


def export_onnx(description: ExportDescription, path: str | Path, batch: int | None = None, opset: int = OPSET) -> Path:
    """Write the ONNX graph of ``description`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(export_onnx_bytes(description, batch, opset))
    return path


def graph_operators(onnx_path: str | Path) -> list[str]:
    """Sorted operator types of the graph (``Constant`` nodes included)."""
    onnx = require_package("onnx")
    return sorted({node.op_type for node in onnx.load(str(onnx_path)).graph.node})


def parameter_count(module: torch.nn.Module) -> int:
    """Number of trainable parameters (buffers such as scalers not counted)."""
    return sum(p.numel() for p in module.parameters())


def weights_sha256(description: ExportDescription) -> dict[str, str]:
    """sha256 of the weights file (if any) and of the module's state (names, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(description.module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    hashes = {"state_dict": digest.hexdigest()}
    if description.weights_path and Path(description.weights_path).is_file():
        hashes["weights_file"] = hashlib.sha256(Path(description.weights_path).read_bytes()).hexdigest()
    return hashes


def _tensor_doc(model: Any, names: tuple[str, ...], units: dict[str, str], which: str) -> list[dict[str, Any]]:
    values = {v.name: v for v in getattr(model.graph, which)}
    docs = []
    for name in names:
        dims = values[name].type.tensor_type.shape.dim
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in dims]
        docs.append({"name": name, "shape": shape, "dtype": "float32", "unit": units.get(name, "")})
    return docs


@dataclass
class ExportResult:
    """Files written by `export_component` and what the sidecar says."""

    component: str
    onnx_path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    sofie: Any = None  # sofie_codegen.SofieArtifacts when SOFIE code was generated
    files: list[Path] = field(default_factory=list)


def export_component(
    component: str,
    output_dir: str | Path,
    *,
    params: dict | None = None,
    batch: int | None = None,
    sofie: bool = True,
    max_batch: int = 4096,
    registry: Any = None,
) -> ExportResult:
    """Export ``component``: ONNX graph, JSON sidecar and (unless ``sofie=False``) SOFIE C++.

    Args:
        component: registered component name (e.g. ``gan-target``).
        output_dir: folder for the files (created).
        params: parameter overrides (defaults are the declared ones).
        batch: fixed batch size; None exports a dynamic batch axis.
        sofie: also generate the SOFIE header, weight file and binding header.
        max_batch: default maximum batch of the SOFIE session for a dynamic batch.

    Raises:
        ExportError: unknown/non-neural component or bad graph;
        sofie_codegen.UnsupportedOperatorError: the graph has operators SOFIE lacks.
    """
    description = get_export_description(component, params, registry)
    output_dir = Path(output_dir)
    stem = component.replace("-", "_")
    onnx_path = export_onnx(description, output_dir / f"{stem}.onnx", batch)
    onnx = require_package("onnx")
    model = onnx.load(str(onnx_path))
    sidecar: dict[str, Any] = {
        "format": "shipfastsim-onnx-export/1",
        "component": component,
        "version": description.version,
        "onnx": {"file": onnx_path.name, "opset": OPSET, "ir_version": int(model.ir_version),
                 "producer": f"torch {torch.__version__}"},
        "batch": ({"dynamic": True, "axis": 0, "name": BATCH_AXIS} if batch is None
                  else {"dynamic": False, "size": int(batch)}),
        "inputs": _tensor_doc(model, description.input_names, description.units, "input"),
        "outputs": _tensor_doc(model, description.output_names, description.units, "output"),
        "operators": graph_operators(onnx_path),
        "parameters": parameter_count(description.module),
        "sha256": {"graph": hashlib.sha256(onnx_path.read_bytes()).hexdigest(), **weights_sha256(description)},
        "weights_path": str(description.weights_path) if description.weights_path else None,
        "sofie": None,
    }
    result = ExportResult(component, onnx_path, output_dir / f"{stem}.json", sidecar, files=[onnx_path])
    if sofie:
        from shipfastsim.adapters.sofie_codegen import generate_sofie

        artifacts = generate_sofie(onnx_path, output_dir, sidecar, max_batch=batch or max_batch)
        sidecar["sofie"] = artifacts.to_json()
        result.sofie = artifacts
        result.files += [artifacts.header, artifacts.weights, artifacts.binding]
    result.sidecar_path.write_text(json.dumps(sidecar, indent=1) + "\n")
    result.files.append(result.sidecar_path)
    return result
