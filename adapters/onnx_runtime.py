"""Inference of a neural component through onnxruntime, called like its torch module.

`OnnxRuntimeModule` is what a neural plugin uses for ``backend: onnxruntime``: the
component's `ExportDescription` is exported once, in memory (opset
`shipfastsim.adapters.onnx_export.OPSET`, dynamic batch axis), and every call runs the
graph with onnxruntime on the CPU.
"""

from __future__ import annotations

import torch

from shipfastsim.adapters.onnx_errors import require_package
from shipfastsim.adapters.onnx_export import export_onnx_bytes
from shipfastsim.components import ExportDescription

__all__ = ["OnnxRuntimeModule"]


class OnnxRuntimeModule(torch.nn.Module):
    """A neural component run by onnxruntime, called like its torch module.

    The module of ``description`` is exported once (in memory, dynamic batch) and run
    on the CPU by onnxruntime in float32 (a float64 module is exported as a float32
    copy); calls take torch tensors and return tensors on the device and in the
    floating dtype of the first input.  One output gives a tensor, several a tuple.

    Args:
        description: the component's `ExportDescription`.
        threads: onnxruntime intra-op threads (None: onnxruntime's default).
    """

    def __init__(self, description: ExportDescription, threads: int | None = None):
        super().__init__()
        ort = require_package("onnxruntime")
        self.input_names = tuple(description.input_names)
        self.output_names = tuple(description.output_names)
        self.graph = export_onnx_bytes(description)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.graph, options, providers=["CPUExecutionProvider"])

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
        device = inputs[0].device
        feed = {name: t.detach().to("cpu", torch.float32).contiguous().numpy() for name, t in
                zip(self.input_names, inputs, strict=True)}
        dtype = inputs[0].dtype if inputs[0].is_floating_point() else torch.float32
        outputs = [torch.from_numpy(a).to(device, dtype) for a in self.session.run(list(self.output_names), feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)
