"""SOFIE C++ code generation for exported ONNX graphs, and compiling programs against it.

SOFIE (``pip install sofie``) reads the ONNX file with its own parser and emits a
standalone C++ header ``<stem>.hxx`` (namespace ``SOFIE_<stem>``, class ``Session``,
free function ``doInfer``) and the weight file ``<stem>.dat``.  The generated code
needs only a C++17 compiler and BLAS (``sgemm_``; e.g. OpenBLAS).

Batch: a graph with a dynamic batch axis gives a session constructed with a maximum
batch (``Session(weights, max_batch)``) whose ``doInfer(session, batch, ...)`` takes any
batch up to it; a fixed-batch graph gives ``Session(weights)`` and
``doInfer(session, ...)`` for exactly that batch.  To hide the difference this module
also writes a *binding header* ``<stem>_shipfastsim.hxx`` with one interface for all
models (namespace ``shipfastsim_model``: ``Session``, ``make_session``, ``run`` and the
input/output widths), which the programs in ``adapters/cpp/`` include through the
macro ``SHIPFASTSIM_MODEL_HEADER``.

Operators SOFIE lacks are found with ``sofie.onnx.check_model`` before parsing and
raise `UnsupportedOperatorError` naming them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipfastsim.adapters.onnx_errors import INSTALL_HINT, ExportError
from shipfastsim.components import ExportDescription

__all__ = [
    "CPP_DIR",
    "UnsupportedOperatorError",
    "CompilerUnavailable",
    "SofieArtifacts",
    "unsupported_operators",
    "generate_sofie",
    "column_distributions",
    "sample_graph_inputs",
    "find_toolchain",
    "compile_program",
]

#: The C++ programs shipped with the adapter (example generator, test/benchmark driver).
CPP_DIR = Path(__file__).resolve().parent / "cpp"


class UnsupportedOperatorError(ExportError):
    """The graph uses ONNX operators that SOFIE cannot generate code for."""

    def __init__(self, operators: dict[str, int], path: str | Path):
        self.operators = dict(operators)
        listing = ", ".join(f"{op} (x{n})" for op, n in sorted(operators.items()))
        super().__init__(f"SOFIE does not support the operator(s) {listing} used in {path}; "
                         "rewrite the module with supported operations (e.g. Relu arithmetic for Sign)")


class CompilerUnavailable(RuntimeError):
    """No C++ compiler or no BLAS library was found."""


def _sofie() -> Any:
    try:
        import sofie
    except ImportError as error:
        raise ExportError(f"SOFIE code generation needs the package 'sofie': {INSTALL_HINT}") from error
    return sofie


@contextlib.contextmanager
def _captured_stdout(sink: list[str]):
    """Collect what native code writes to file descriptor 1 (SOFIE prints from C++)."""
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(1)
        libc.fflush(None)
        os.dup2(tmp.fileno(), 1)
        try:
            yield
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode(errors="replace"))


def unsupported_operators(onnx_path: str | Path) -> dict[str, int]:
    """Operator type -> number of uses, for the operators of the graph that SOFIE lacks."""
    sofie = _sofie()
    text: list[str] = []
    with _captured_stdout(text):
        supported = sofie.onnx.check_model(str(onnx_path))
    if supported:
        return {}
    missing: dict[str, int] = {}
    lines = text[0].splitlines()
    for i, line in enumerate(lines):
        if line.startswith("List of missing operators"):
            for entry in lines[i + 1:]:
                match = re.fullmatch(r"\s*([A-Za-z][\w.]*)\s+(\d+)\s*", entry)
                if not match:
                    break
                missing[match[1]] = int(match[2])
    if not missing:  # unknown message format: let the parser name the operator
        try:
            with _captured_stdout([]):
                sofie.onnx.parse(str(onnx_path))
        except RuntimeError as error:
            match = re.search(r"Operator type (\S+)", str(error))
            missing[match[1] if match else str(error)] = 1
    return missing


def column_distributions(unit: str, width: int) -> list[str]:
    """Per-column noise distribution (``normal`` or ``uniform``) read from a unit string.

    Recognised: counted terms in column order, such as ``"16 x N(0,1), 1 x U(0,1)"`` or
    ``"16 standard normals, then one uniform in [0, 1)"`` (counts summing to ``width``),
    or a single ``N(0,1)``/``U(0,1)``/``normal``/``uniform`` for every column; anything
    else means normal.
    """
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
    token = r"(N\(0,\s*1\)|U\(0,\s*1\)|normals?|gaussians?|gauss|uniforms?)"

    def kind(text: str) -> str:
        return "uniform" if text[0].lower() == "u" else "normal"

    counted = re.findall(r"\b(\d+|" + "|".join(words) + r")\s*(?:[x×*]\s*)?(?:standard\s+)?" + token, unit,
                         flags=re.IGNORECASE)
    counts = [(int(n) if n.isdigit() else words[n.lower()], kind(t)) for n, t in counted]
    if counts and sum(n for n, _ in counts) == width:
        return [k for n, k in counts for _ in range(n)]
    found = {kind(t) for t in re.findall(token, unit, flags=re.IGNORECASE)}
    return [found.pop() if len(found) == 1 else "normal"] * width


def sample_graph_inputs(description: ExportDescription, n: int, seed: int) -> list[np.ndarray]:
    """float32 inputs of ``n`` rows for an `ExportDescription`, each column drawn as its
    units declare (`column_distributions`: U(0,1) or N(0,1))."""
    rng = np.random.default_rng(seed)
    arrays = []
    for name, example in zip(description.input_names, description.example_inputs, strict=True):
        width = int(np.prod(example.shape[1:]))
        kinds = column_distributions(description.units.get(name, ""), width)
        columns = [rng.random(n) if kind == "uniform" else rng.standard_normal(n) for kind in kinds]
        arrays.append(np.stack(columns, axis=1).astype(np.float32).reshape(n, *example.shape[1:]))
    return arrays


@dataclass
class SofieArtifacts:
    """Files and names of one SOFIE generation."""

    header: Path
    weights: Path
    binding: Path
    namespace: str
    dynamic_batch: bool
    max_batch: int

    def to_json(self) -> dict[str, Any]:
        return {"header": self.header.name, "weights": self.weights.name, "binding_header": self.binding.name,
                "namespace": self.namespace, "session": f"{self.namespace}::Session",
                "dynamic_batch": self.dynamic_batch, "max_batch": self.max_batch}


def _width(shape: list[Any]) -> int:
    return math.prod(int(d) for d in shape[1:])


def _binding_header(art: SofieArtifacts, sidecar: dict[str, Any], inputs: list[str], outputs: list[str]) -> str:
    by_name = {t["name"]: t for t in sidecar["inputs"] + sidecar["outputs"]}
    widths_in = [_width(by_name[n]["shape"]) for n in inputs]
    widths_out = [_width(by_name[n]["shape"]) for n in outputs]
    noise = column_distributions(by_name[inputs[0]]["unit"], widths_in[0])
    uniform = ", ".join(str(k == "uniform").lower() for k in noise)
    ns, batch_arg = art.namespace, ("batch, " if art.dynamic_batch else "")
    check = "batch > session.fBatch" if art.dynamic_batch else "batch != kMaxBatch"
    args = ", ".join([f"in[{i}]" for i in range(len(inputs))] + [f"out[{i}]" for i in range(len(outputs))])
    ctor = "weights, max_batch" if art.dynamic_batch else "weights"
    quoted = lambda names: ", ".join(json.dumps(n) for n in names)  # noqa: E731
    units = lambda names: ", ".join(json.dumps(by_name[n]["unit"]) for n in names)  # noqa: E731
    return f"""// Generated by shipfastsim (sofie_codegen): one interface over the SOFIE session of
// component {sidecar['component']!r}, version {sidecar['version']!r}. Do not edit.
#pragma once
#include "{art.header.name}"
#include <array>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace shipfastsim_model {{
using Session = {ns}::Session;
inline constexpr const char *kComponent = "{sidecar['component']}";
inline constexpr const char *kWeightFile = "{art.weights.name}";
inline constexpr bool kDynamicBatch = {str(art.dynamic_batch).lower()};
inline constexpr std::size_t kMaxBatch = {art.max_batch};  // fixed batch when !kDynamicBatch
inline constexpr std::size_t kNumInputs = {len(inputs)};
inline constexpr std::size_t kNumOutputs = {len(outputs)};
inline constexpr std::array<const char *, kNumInputs> kInputNames{{{quoted(inputs)}}};
inline constexpr std::array<const char *, kNumOutputs> kOutputNames{{{quoted(outputs)}}};
inline constexpr std::array<const char *, kNumInputs> kInputUnits{{{units(inputs)}}};
inline constexpr std::array<const char *, kNumOutputs> kOutputUnits{{{units(outputs)}}};
inline constexpr std::array<std::size_t, kNumInputs> kInputWidths{{{", ".join(map(str, widths_in))}}};
inline constexpr std::array<std::size_t, kNumOutputs> kOutputWidths{{{", ".join(map(str, widths_out))}}};
// Distribution of each column of the first input (true: U(0,1), false: N(0,1)).
inline constexpr std::array<bool, {widths_in[0]}> kNoiseUniform{{{uniform}}};

// A session for up to max_batch rows per call (ignored, and kMaxBatch used, for a fixed batch).
inline std::unique_ptr<Session> make_session(const std::string &weights, std::size_t max_batch = kMaxBatch) {{
   if (!kDynamicBatch) max_batch = kMaxBatch;
   (void)max_batch;
   return std::make_unique<Session>({ctor});
}}

// Infer `batch` rows: in[i] holds batch * kInputWidths[i] floats, out[i] receives batch * kOutputWidths[i].
inline void run(const Session &session, std::size_t batch, const float *const *in, float *const *out) {{
   if ({check})
      throw std::runtime_error("shipfastsim_model::run: batch does not fit the session");
   {ns}::doInfer(session, {batch_arg}{args});
}}
}} // namespace shipfastsim_model
"""


def generate_sofie(onnx_path: str | Path, output_dir: str | Path, sidecar: dict[str, Any],
                   max_batch: int = 4096) -> SofieArtifacts:
    """Generate ``<stem>.hxx``, ``<stem>.dat`` and the binding header ``<stem>_shipfastsim.hxx``.

    Args:
        onnx_path: the exported graph (its file stem names the SOFIE namespace).
        output_dir: folder for the generated files.
        sidecar: the export sidecar (names, shapes, units, batch).
        max_batch: default maximum batch of a dynamic-batch session (the fixed batch otherwise).

    Raises:
        UnsupportedOperatorError: operators SOFIE cannot generate, named in the message.
    """
    sofie = _sofie()
    onnx_path, output_dir = Path(onnx_path), Path(output_dir)
    missing = unsupported_operators(onnx_path)
    if missing:
        raise UnsupportedOperatorError(missing, onnx_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = onnx_path.stem
    header = output_dir / f"{stem}.hxx"
    with _captured_stdout([]):
        rmodel = sofie.onnx.parse(str(onnx_path))
        rmodel.generate()
        rmodel.output_generated(str(header))  # writes the .dat beside it
    weights = header.with_suffix(".dat")
    if not weights.is_file():
        raise ExportError(f"SOFIE wrote no weight file {weights}")
    dynamic = bool(sidecar["batch"]["dynamic"])
    art = SofieArtifacts(header, weights, output_dir / f"{stem}_shipfastsim.hxx", f"SOFIE_{rmodel.get_name()}",
                         dynamic, int(max_batch))
    strip = lambda n: n[len("tensor_"):] if n.startswith("tensor_") else n  # noqa: E731
    inputs = [strip(n) for n in rmodel.get_input_tensor_names()]
    outputs = [strip(n) for n in rmodel.get_output_tensor_names()]
    known = {t["name"] for t in sidecar["inputs"] + sidecar["outputs"]}
    if not set(inputs + outputs) <= known:  # SOFIE renamed tensors: fall back to the graph order
        inputs, outputs = [t["name"] for t in sidecar["inputs"]], [t["name"] for t in sidecar["outputs"]]
    art.binding.write_text(_binding_header(art, sidecar, inputs, outputs))
    return art


def find_toolchain() -> tuple[str, list[str]]:
    """The C++ compiler and the BLAS link flags.

    Raises:
        CompilerUnavailable: no compiler (``$CXX``, g++, clang++) or no BLAS library.
    """
    cxx = shutil.which(os.environ.get("CXX", "")) or shutil.which("g++") or shutil.which("c++") or shutil.which(
        "clang++")
    if not cxx:
        raise CompilerUnavailable("no C++ compiler (set CXX or install g++)")
    for lib in ("openblas", "blas"):
        probe = subprocess.run([cxx, "-x", "c++", "-", "-o", os.devnull, f"-l{lib}"],
                               input="extern \"C\" void sgemm_(); int main() { sgemm_(); }",
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return cxx, [f"-l{lib}"]
    raise CompilerUnavailable("no BLAS library to link (apt install libopenblas-dev)")


def compile_program(source: str | Path, binding: str | Path, executable: str | Path,
                    flags: tuple[str, ...] = ("-O2",)) -> Path:
    """Compile ``source`` (e.g. ``CPP_DIR / "sofie_driver.cpp"``) against a binding header.

    Raises:
        CompilerUnavailable: no compiler or BLAS; RuntimeError: the compilation failed.
    """
    cxx, libs = find_toolchain()
    binding = Path(binding).resolve()
    command = [cxx, "-std=c++17", *flags, f"-I{binding.parent}", f'-DSHIPFASTSIM_MODEL_HEADER="{binding.name}"',
               str(source), "-o", str(executable), *libs]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"compiling {source} failed:\n{' '.join(command)}\n{done.stderr[-4000:]}")
    return Path(executable)
