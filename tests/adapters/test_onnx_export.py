"""ONNX export of every neural component: graph, sidecar, onnxruntime = torch, CLI errors.

Cases: every registered component whose export hook answers, plus the test-only
components of `onnx_cases` (an affine-coupling flow and a two-input classifier).
Agreement: per element relative deviation below 1e-5, with the absolute floors the
component declares per column (`ExportDescription.floors`; see `onnx_cases`).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from shipfastsim.adapters.onnx_errors import require_package
from shipfastsim.adapters.onnx_export import (
    OPSET,
    ExportError,
    export_component,
    get_export_description,
    weights_sha256,
)
from shipfastsim.adapters.onnx_runtime import OnnxRuntimeModule
from shipfastsim.cli import main
from tests.adapters.onnx_cases import (
    RTOL,
    case_ids,
    cases,
    deviation,
    sample_inputs,
    torch_outputs,
    toy_registry,
)

CASES = cases()


@pytest.mark.parametrize(("component", "registry"), CASES, ids=case_ids())
def test_onnxruntime_module_matches_torch(component, registry):
    description = get_export_description(component, registry=registry)
    inputs = sample_inputs(description)
    expected = torch_outputs(description, inputs)
    engine = OnnxRuntimeModule(description, threads=1)
    got = engine(*[torch.from_numpy(a) for a in inputs])
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert isinstance(g, torch.Tensor) and g.device.type == "cpu" and g.dtype == torch.float32
        assert deviation(description, k, g.numpy(), e) < RTOL


@pytest.mark.parametrize(("component", "registry"), CASES, ids=case_ids())
def test_export_writes_graph_and_sidecar(component, registry, tmp_path):
    result = export_component(component, tmp_path, registry=registry, sofie=False)
    description = get_export_description(component, registry=registry)
    stem = component.replace("-", "_")
    assert result.onnx_path == tmp_path / f"{stem}.onnx"
    sidecar = json.loads((tmp_path / f"{stem}.json").read_text())
    model = onnx.load(str(result.onnx_path))
    assert [i.name for i in model.graph.input] == list(description.input_names)
    assert [o.name for o in model.graph.output] == list(description.output_names)
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    assert sidecar["onnx"]["opset"] == OPSET == max(opsets)
    assert sidecar["batch"] == {"dynamic": True, "axis": 0, "name": "batch"}
    assert "batch axis 0 dynamic (batch)" in model.doc_string
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["shipfastsim.version"] == description.version
    assert json.loads(metadata["shipfastsim.units"]) == description.units
    assert sidecar["version"] == description.version
    assert [t["name"] for t in sidecar["inputs"]] == list(description.input_names)
    for tensor, example in zip(sidecar["inputs"], description.example_inputs, strict=True):
        assert tensor["shape"] == ["batch", *example.shape[1:]]
        assert tensor["unit"] == description.units.get(tensor["name"], "")
    assert sidecar["operators"] == sorted({n.op_type for n in model.graph.node})
    assert sidecar["parameters"] == sum(p.numel() for p in description.module.parameters()) > 0
    assert sidecar["sha256"]["graph"] == hashlib.sha256(result.onnx_path.read_bytes()).hexdigest()
    assert sidecar["sha256"]["state_dict"] == weights_sha256(description)["state_dict"]
    if description.weights_path:
        assert "weights_file" in sidecar["sha256"]
    assert sidecar["sofie"] is None

    # The file on disk, any batch size, through onnxruntime: the torch outputs.
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    sample = sample_inputs(description)
    for n in (1, 37):
        inputs = [a[:n] for a in sample]
        got = session.run(list(description.output_names), dict(zip(description.input_names, inputs, strict=True)))
        for k, (g, e) in enumerate(zip(got, torch_outputs(description, inputs), strict=True)):
            assert g.shape[0] == n
            assert deviation(description, k, g, e) < RTOL


def test_agreement_criterion_sees_a_small_weight_change():
    """Negative control: a 1e-3 change of one weight is far outside the tolerance."""
    description = get_export_description("toy-flow", registry=toy_registry())
    engine = OnnxRuntimeModule(description)
    noise = sample_inputs(description)[0]
    with torch.no_grad():
        description.module.couplings[-1].net[-1].bias[0] += 1e-3
    assert deviation(description, 0, engine(torch.from_numpy(noise)).numpy(),
                     torch_outputs(description, [noise])[0]) > 10 * RTOL


def test_agreement_criterion_sees_a_small_log_odds_error_of_the_filter():
    """Negative control of mlp-filter's absolute floor (10 in log-odds): its last bias moved by
    1.5e-3 (log-odds by 1.2e-3, through the calibration's slope 0.81) is outside the tolerance."""
    description = get_export_description("mlp-filter")
    engine = OnnxRuntimeModule(description, threads=1)
    inputs = sample_inputs(description)
    with torch.no_grad():
        description.module.net[-1].bias[0] += 1.5e-3
    got = engine(*[torch.from_numpy(a) for a in inputs])
    got = got[0] if isinstance(got, tuple) else got
    assert deviation(description, 0, got.numpy(), torch_outputs(description, inputs)[0]) > 10 * RTOL


def test_agreement_criterion_sees_zeroed_prompt_positions():
    """Negative control: x, y of the 70 % of gan-target muons nearest the axis (prompt, |x|
    ~ 1e-5 cm) set to 0 must fail, as must a 2e-5 relative error on one element."""
    description = get_export_description("gan-target")
    inputs = sample_inputs(description)
    (muons,) = torch_outputs(description, inputs)
    assert deviation(description, 0, muons, muons) == 0
    r = np.hypot(muons[:, 0], muons[:, 1])
    zeroed = muons.copy()
    zeroed[r <= np.quantile(r, 0.7), :2] = 0
    assert deviation(description, 0, zeroed, muons) > 0.5
    nudged = muons.copy()
    nudged[np.argmax(r), 0] *= 1 + 2e-5
    assert deviation(description, 0, nudged, muons) > RTOL


def test_fixed_batch_export(tmp_path):
    registry = toy_registry()
    result = export_component("toy-flow", tmp_path, batch=8, sofie=False, registry=registry)
    assert result.sidecar["batch"] == {"dynamic": False, "size": 8}
    assert result.sidecar["inputs"][0]["shape"] == [8, 6]
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    description = get_export_description("toy-flow", registry=registry)
    inputs = sample_inputs(description, n=8)
    (got,) = session.run(None, {"noise": inputs[0]})
    assert deviation(description, 0, got, torch_outputs(description, inputs)[0]) < RTOL
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"noise": sample_inputs(description, n=9)[0]})


def test_weights_hash_follows_the_weights():
    description = get_export_description("toy-flow", registry=toy_registry())
    before = weights_sha256(description)["state_dict"]
    assert weights_sha256(get_export_description("toy-flow", registry=toy_registry()))["state_dict"] == before
    with torch.no_grad():
        description.module.couplings[0].net[0].weight[0, 0] += 1e-3
    assert weights_sha256(description)["state_dict"] != before


def test_float64_module_through_onnxruntime():
    description = get_export_description("toy-flow", registry=toy_registry())
    description.module.double()
    noise = torch.from_numpy(sample_inputs(description)[0]).double()
    with torch.no_grad():
        expected = description.module(noise)
    got = OnnxRuntimeModule(description)(noise)
    assert got.dtype == torch.float64
    assert next(description.module.parameters()).dtype == torch.float64  # the caller's module is left alone
    # float32 graph: float32 precision
    assert deviation(description, 0, got.numpy(), expected.numpy()) < 1e-5


def test_unknown_and_non_neural_components_are_clear_errors():
    registry = toy_registry()
    with pytest.raises(ExportError, match="'nope' is not a registered component; exportable components: "
                                          "toy-classifier, toy-flow, toy-sign"):
        get_export_description("nope", registry=registry)
    with pytest.raises(ExportError, match="'toy-gun' is not a neural component; exportable components: toy-"):
        get_export_description("toy-gun", registry=registry)


def test_cli_export(tmp_path, monkeypatch, capsys):
    import shipfastsim.registry

    monkeypatch.setattr(shipfastsim.registry, "get_registry", toy_registry)
    assert main(["export", "onnx", "toy-flow", "--output", str(tmp_path / "out"), "--no-sofie"]) == 0
    printed = capsys.readouterr().out
    assert f"opset {OPSET}, batch dynamic" in printed and "Exp" in printed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["toy_flow.json", "toy_flow.onnx"]

    default = json.loads((tmp_path / "out" / "toy_flow.json").read_text())["sha256"]["state_dict"]
    assert main(["export", "onnx", "toy-flow", "-o", str(tmp_path / "p"), "--no-sofie", "--param", "seed=8"]) == 0
    assert json.loads((tmp_path / "p" / "toy_flow.json").read_text())["sha256"]["state_dict"] != default
    assert main(["export", "onnx", "toy-flow", "-o", str(tmp_path / "q"), "--param", "seed"]) == 2
    capsys.readouterr()

    assert main(["export", "onnx", "toy-gun", "--output", str(tmp_path / "gun")]) == 2
    error = capsys.readouterr().err
    assert "'toy-gun' is not a neural component" in error and "toy-classifier, toy-flow" in error


def test_missing_package_gives_install_hint(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ExportError, match=r"pip install shipfastsim\[onnx\]"):
        require_package("onnxruntime")


def test_sample_inputs_follow_declared_distributions():
    description = get_export_description("toy-flow", registry=toy_registry())
    (noise,) = sample_inputs(description, n=4000)
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05 and noise.min() < -2
    assert np.isfinite(noise).all()
