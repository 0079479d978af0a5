"""SOFIE C++ for every neural component: generated, compiled (g++ -O2, BLAS), run, compared.

For each case of `onnx_cases` the component is exported with SOFIE once per session,
the driver ``adapters/cpp/sofie_driver.cpp`` is compiled against it once, and run as a
subprocess on inputs written to a file; its outputs must agree with torch and with
onnxruntime to 1e-5 relative per element (with the floors the component declares per
column, see `onnx_cases`).  Skipped, with the reason, only when no C++ compiler or
no BLAS library is found.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from shipfastsim.adapters.onnx_export import ExportError, export_component, get_export_description
from shipfastsim.adapters.sofie_codegen import (
    CPP_DIR,
    CompilerUnavailable,
    UnsupportedOperatorError,
    compile_program,
    find_toolchain,
)
from shipfastsim.cli import main
from tests.adapters.onnx_cases import RTOL, case_ids, cases, deviation, sample_inputs, torch_outputs, toy_registry

CASES = cases()
SINGLE_THREAD = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def toolchain():
    try:
        return find_toolchain()
    except CompilerUnavailable as error:
        pytest.skip(f"cannot compile SOFIE code: {error}")


@pytest.fixture(scope="session")
def builds(toolchain, tmp_path_factory):
    """Export + compile once per (component, batch, program) in the session."""
    done: dict[tuple, tuple] = {}

    def build(component, registry, batch=None, program="sofie_driver"):
        key = (component, batch, program)
        if key not in done:
            folder = tmp_path_factory.mktemp(f"sofie_{component}_{batch}")
            result = export_component(component, folder, registry=registry, batch=batch)
            executable = compile_program(CPP_DIR / f"{program}.cpp", result.sofie.binding, folder / program)
            done[key] = (result, executable)
        return done[key]

    return build


def run_driver(executable: Path, weights: Path, inputs: list[np.ndarray], folder: Path, shapes: list) -> list:
    n = len(inputs[0])
    (folder / "in.bin").write_bytes(b"".join(np.ascontiguousarray(a, dtype=np.float32).tobytes() for a in inputs))
    subprocess.run([str(executable), str(weights), str(folder / "in.bin"), str(folder / "out.bin"), str(n)],
                   check=True, env=SINGLE_THREAD, capture_output=True, timeout=60)
    flat = np.fromfile(folder / "out.bin", dtype=np.float32)
    outputs, start = [], 0
    for shape in shapes:
        size = n * int(np.prod(shape))
        outputs.append(flat[start:start + size].reshape(n, *shape))
        start += size
    assert start == flat.size
    return outputs


@pytest.mark.parametrize(("component", "registry"), CASES, ids=case_ids())
def test_sofie_matches_torch_and_onnxruntime(component, registry, builds, tmp_path):
    result, executable = builds(component, registry)
    description = get_export_description(component, registry=registry)
    assert result.sidecar["sofie"]["namespace"] == "SOFIE_" + component.replace("-", "_")
    assert {p.name for p in result.files} >= {result.sofie.header.name, result.sofie.weights.name}
    inputs = sample_inputs(description, seed=11)
    shapes = [t["shape"][1:] for t in result.sidecar["outputs"]]
    got = run_driver(executable, result.sofie.weights, inputs, tmp_path, shapes)
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    from_ort = session.run(list(description.output_names), dict(zip(description.input_names, inputs, strict=True)))
    from_torch = torch_outputs(description, inputs)
    for name, cpp, onnxrt, reference in zip(description.output_names, got, from_ort, from_torch, strict=True):
        assert np.isfinite(cpp).all(), name
        assert deviation(description, name, cpp, reference) < RTOL, f"{component}/{name}: SOFIE vs torch"
        assert deviation(description, name, cpp, onnxrt) < RTOL, f"{component}/{name}: SOFIE vs onnxruntime"


def test_fixed_batch_session_runs_in_chunks(builds, tmp_path):
    registry = toy_registry()
    result, executable = builds("toy-flow", registry, batch=16)
    assert result.sidecar["sofie"]["dynamic_batch"] is False
    assert "kMaxBatch = 16" in result.sofie.binding.read_text()
    description = get_export_description("toy-flow", registry=registry)
    inputs = sample_inputs(description, n=64, seed=5)
    (got,) = run_driver(executable, result.sofie.weights, inputs, tmp_path, [[6]])
    assert deviation(description, 0, got, torch_outputs(description, inputs)[0]) < RTOL
    bad = subprocess.run([str(executable), str(result.sofie.weights), str(tmp_path / "in.bin"),
                          str(tmp_path / "o.bin"), "60"], capture_output=True, text=True, env=SINGLE_THREAD)
    assert bad.returncode == 2 and "multiple of the fixed batch 16" in bad.stderr


@pytest.mark.parametrize(("component", "registry"), [c for c in CASES if c[1].get("generator", c[0])],
                         ids=[c[0] for c in CASES if c[1].get("generator", c[0])])
def test_generate_muons_example(component, registry, builds):
    result, executable = builds(component, registry, program="generate_muons")
    width = sum(int(np.prod(t["shape"][1:])) for t in result.sidecar["outputs"])

    def generate(seed: int, n: int = 25) -> np.ndarray:
        done = subprocess.run([str(executable), str(result.sofie.weights), str(n), str(seed)], check=True,
                              capture_output=True, text=True, env=SINGLE_THREAD, timeout=60)
        rows = [line for line in done.stdout.splitlines() if not line.startswith("#")]
        assert f"# {component}: {n} muons, seed {seed}" in done.stdout
        return np.array([[float(v) for v in row.split()] for row in rows])

    first = generate(1)
    assert first.shape == (25, width) and np.isfinite(first).all()
    assert np.array_equal(first, generate(1))  # seeded: reproducible
    assert not np.allclose(first, generate(2))
    assert generate(1, n=3000).shape == (3000, width)  # several chunks


def test_unsupported_operator_is_named(tmp_path, capsys):
    registry = toy_registry()
    with pytest.raises(UnsupportedOperatorError, match=r"operator\(s\) Sign \(x1\)") as info:
        export_component("toy-sign", tmp_path, registry=registry)
    assert info.value.operators == {"Sign": 1}
    assert isinstance(info.value, ExportError)
    # without SOFIE the graph itself exports
    assert export_component("toy-sign", tmp_path / "plain", registry=registry, sofie=False).onnx_path.is_file()


def test_cli_reports_unsupported_operator(tmp_path, monkeypatch, capsys):
    import shipfastsim.registry

    monkeypatch.setattr(shipfastsim.registry, "get_registry", toy_registry)
    assert main(["export", "onnx", "toy-sign", "--output", str(tmp_path)]) == 2
    assert "SOFIE does not support the operator(s) Sign" in capsys.readouterr().err
