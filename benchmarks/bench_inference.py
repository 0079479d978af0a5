"""Single-thread inference time per muon: SOFIE C++ vs onnxruntime vs torch, per neural component.

Run:  python benchmarks/bench_inference.py [--batch 1024] [--seconds 1] [--json out.json] [--demo]

For every registered component whose export hook answers (e.g. ``gan-target``), and
for a demo affine-coupling flow (with ``--demo``, or when no component is exportable):

* SOFIE: the component is exported (dynamic batch), ``adapters/cpp/sofie_driver.cpp``
  is compiled against the generated header (OpenBLAS; once per ``--cxxflags``,
  by default -O2 and -O3 -march=native: at -O2 g++ leaves SOFIE's LeakyRelu select
  loops scalar and branchy, ~3x slower) and times
  ``doInfer`` in a loop inside C++ (OPENBLAS_NUM_THREADS=1);
* onnxruntime: an InferenceSession with intra_op_num_threads = inter_op_num_threads
  = 1, numpy in and out;
* torch: the module itself under ``torch.inference_mode`` with torch.set_num_threads(1).

Each engine runs batches of ``--batch`` muons for about ``--seconds`` seconds, three
times; the best of the three is reported, in microseconds per muon.  The table also
gives the ONNX operators, the parameter count and the largest deviation of the SOFIE
and onnxruntime outputs from torch (relative, with the column's largest |value| as
absolute floor, as in the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pluggy
import torch

from shipfastsim import hookspecs
from shipfastsim.adapters.onnx_export import OPSET, export_component, exportable_components, get_export_description
from shipfastsim.adapters.sofie_codegen import CPP_DIR, compile_program, sample_graph_inputs
from shipfastsim.components import ComponentSpec, ExportDescription
from shipfastsim.hookspecs import hookimpl
from shipfastsim.registry import ComponentRegistry, get_registry

# The demo flow is the affine-coupling model of the ONNX tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.adapters.onnx_cases import AffineFlow  # noqa: E402

SINGLE_THREAD = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


class _DemoPlugin:
    @hookimpl
    def shipfastsim_declare_components(self) -> list[ComponentSpec]:
        return [ComponentSpec("demo-flow", "generator", "benchmark demo affine-coupling flow")]

    @hookimpl
    def shipfastsim_export_description(self, component: str, params: dict) -> ExportDescription | None:
        if component != "demo-flow":
            return None
        torch.manual_seed(0)
        flow = AffineFlow(dim=6, hidden=64, layers=6)  # RealNVP-sized: 6 couplings of 64 hidden
        return ExportDescription(flow.eval(), ("noise",), ("state",), (torch.randn(4, 6),),
                                 {"noise": "N(0,1)", "state": "x, y, z [cm], px, py, pz [GeV/c]"}, "demo-1")


def _demo_registry() -> ComponentRegistry:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(_DemoPlugin(), name="demo")
    return ComponentRegistry(manager)


def _best_time_per_row(call: Callable[[], object], n: int, seconds: float) -> float:
    call()
    best = float("inf")
    for _ in range(3):
        repeats, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3 or repeats < 3:
            call()
            repeats += 1
        best = min(best, elapsed / (repeats * n))
    return best


def _deviation(values: np.ndarray, reference: np.ndarray) -> float:
    values, reference = values.reshape(len(values), -1), reference.reshape(len(reference), -1)
    floor = np.abs(reference.astype(np.float64)).max(axis=0) + 1e-30
    return float(np.max(np.abs(values - reference) / np.maximum(np.abs(reference), floor)))


def bench_component(name: str, registry: ComponentRegistry, batch: int, seconds: float, folder: Path,
                    cxxflags: tuple[str, ...] = ("-O2",), params: dict | None = None) -> dict:
    """Time one component on the three engines (SOFIE once per flag string); a row of the table."""
    import onnxruntime as ort

    description = get_export_description(name, params, registry=registry)
    result = export_component(name, folder / name, params=params, registry=registry, max_batch=batch)
    inputs = sample_graph_inputs(description, batch, seed=1)
    in_file, out_file = folder / name / "in.bin", folder / name / "out.bin"
    in_file.write_bytes(b"".join(a.tobytes() for a in inputs))

    # SOFIE: the timing loop runs inside the C++ driver.
    def sofie_run(driver: Path, repeats: int) -> float:
        done = subprocess.run([str(driver), str(result.sofie.weights), str(in_file), str(out_file), str(batch),
                               str(repeats)], check=True, capture_output=True, text=True, env=SINGLE_THREAD)
        return float(done.stdout.split()[-1]) * 1e-9

    sofie_us, sofie_flat = {}, {}
    for i, flags in enumerate(cxxflags):
        driver = compile_program(CPP_DIR / "sofie_driver.cpp", result.sofie.binding, folder / name / f"driver{i}",
                                 flags=tuple(flags.split()))
        repeats = max(3, int(seconds / 3 / max(sofie_run(driver, 3) * batch, 1e-9)))
        sofie_us[f"sofie_cpp {flags}"] = min(sofie_run(driver, repeats) for _ in range(3)) * 1e6
        sofie_flat[f"sofie_cpp {flags}"] = np.fromfile(out_file, dtype=np.float32)

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(result.onnx_path), options, providers=["CPUExecutionProvider"])
    feed = dict(zip(description.input_names, inputs, strict=True))
    ort_s = _best_time_per_row(lambda: session.run(None, feed), batch, seconds)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    module = description.module.eval()
    tensors = [torch.from_numpy(a) for a in inputs]
    try:
        with torch.inference_mode():
            torch_s = _best_time_per_row(lambda: module(*tensors), batch, seconds)
            reference = module(*tensors)
    finally:
        torch.set_num_threads(threads)
    reference = [r.numpy() for r in (reference if isinstance(reference, tuple | list) else (reference,))]

    deviations = {}
    for engine, flat in sofie_flat.items():
        outputs, start = [], 0
        for r in reference:
            outputs.append(flat[start:start + r.size].reshape(r.shape))
            start += r.size
        deviations[engine] = max(_deviation(o, r) for o, r in zip(outputs, reference, strict=True))
    deviations["onnxruntime"] = max(_deviation(o, r) for o, r in zip(session.run(None, feed), reference, strict=True))
    return {
        "component": name, "version": description.version, "batch": batch, "opset": OPSET,
        "parameters": result.sidecar["parameters"], "operators": result.sidecar["operators"],
        "us_per_muon": {**sofie_us, "onnxruntime": ort_s * 1e6, "torch": torch_s * 1e6},
        "max_rel_deviation_vs_torch": deviations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="muons per inference call (default 1024)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing budget per engine (default 1 s)")
    parser.add_argument("--demo", action="store_true", help="also time the demo affine-coupling flow")
    parser.add_argument("--cxxflags", action="append", metavar="FLAGS",
                        help="flags compiling the SOFIE driver, repeatable (default: -O2 and -O3 -march=native)")
    parser.add_argument("--param", action="append", default=[], metavar="COMPONENT:NAME=VALUE",
                        help="parameter of one component, e.g. gan-target:weights=run/gan_target.safetensors")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()

    params: dict[str, dict] = {}
    for item in args.param:
        component, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        params.setdefault(component, {})[key] = value
    names = set(exportable_components(get_registry())) | set(params)
    components = [(name, get_registry()) for name in sorted(names)]
    if args.demo or not components:
        components.append(("demo-flow", _demo_registry()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, registry in components:
            rows.append(bench_component(name, registry, args.batch, args.seconds, Path(tmp),
                                        tuple(args.cxxflags or ("-O2", "-O3 -march=native")), params.get(name)))
            row = rows[-1]
            t, d = row["us_per_muon"], row["max_rel_deviation_vs_torch"]
            print(f"{name} ({row['version']}): {row['parameters']:,} parameters, batch {args.batch}, "
                  f"opset {OPSET}; operators: {', '.join(row['operators'])}")
            print("  us/muon, 1 thread: " + "  ".join(f"{engine} {us:.3f}" for engine, us in t.items()))
            print("  max rel. deviation from torch: " + "  ".join(f"{engine} {v:.2e}" for engine, v in d.items()))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
