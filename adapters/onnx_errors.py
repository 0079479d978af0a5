"""The ONNX adapters' error and install hint: the layer below the export, the onnxruntime
backend and the SOFIE code generator, which all raise it.

`require_package` imports an optional package of the ``onnx`` extra (onnx, onnxruntime,
sofie) when it is first needed, and turns its absence into an `ExportError` that says
how to install it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["INSTALL_HINT", "ExportError", "require_package"]

INSTALL_HINT = "pip install shipfastsim[onnx]"


class ExportError(Exception):
    """A component cannot be exported (unknown, not neural, or a bad graph)."""


def require_package(module: str) -> Any:
    """The module ``module``, imported now; `ExportError` with the install hint if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ExportError(f"the ONNX export needs the package {module!r}: {INSTALL_HINT}") from error
