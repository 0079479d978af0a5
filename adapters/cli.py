"""The ``export`` subcommand: ``shipfastsim export onnx COMPONENT --output DIR``.

Writes the component's ONNX graph, its JSON sidecar and (unless ``--no-sofie``) the
SOFIE C++ header, weight file and binding header; see
`shipfastsim.adapters.onnx_export` and `shipfastsim.adapters.sofie_codegen`.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _export_onnx(args: argparse.Namespace) -> int:
    from shipfastsim.adapters.onnx_export import ExportError, export_component
    from shipfastsim.errors import UsageError

    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--param wants NAME=VALUE, got {item!r}")
        import yaml

        params[name] = yaml.safe_load(value)
    try:
        result = export_component(args.component, args.output, params=params, batch=args.batch,
                                  sofie=not args.no_sofie, max_batch=args.max_batch)
    except ExportError as error:
        raise UsageError(str(error)) from error
    sidecar = result.sidecar
    batch = "dynamic" if sidecar["batch"]["dynamic"] else f"fixed {sidecar['batch']['size']}"
    print(f"{args.component} (version {sidecar['version']}): opset {sidecar['onnx']['opset']}, batch {batch}, "
          f"{sidecar['parameters']:,} parameters")
    print(f"  operators: {', '.join(sidecar['operators'])}")
    for tensor in sidecar["inputs"] + sidecar["outputs"]:
        print(f"  {tensor['name']} {tensor['shape']}: {tensor['unit']}")
    for path in result.files:
        print(f"  wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` (with its ``onnx`` target) to the command line."""
    export = subparsers.add_parser("export", help="export a neural component (ONNX, SOFIE C++)",
                                   description="Export the inference graph of a neural component.")
    targets = export.add_subparsers(dest="target", required=True, metavar="TARGET")
    onnx = targets.add_parser("onnx", help="ONNX graph + JSON sidecar, and SOFIE C++ header and weights",
                              description="Write COMPONENT.onnx, its JSON sidecar and the SOFIE C++ code "
                                          "(component name with '-' as '_').")
    onnx.add_argument("component", metavar="COMPONENT", help="neural component name, e.g. gan-target")
    onnx.add_argument("--output", "-o", required=True, help="output folder (created)")
    onnx.add_argument("--batch", type=int, default=None, metavar="N",
                      help="fixed batch size N (default: a dynamic batch axis)")
    onnx.add_argument("--max-batch", type=int, default=4096, metavar="N",
                      help="default maximum batch of the SOFIE session for a dynamic batch (default 4096)")
    onnx.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="component parameter overriding its default, e.g. weights=my.safetensors (repeatable)")
    onnx.add_argument("--no-sofie", action="store_true", help="write only the ONNX graph and sidecar")
    onnx.set_defaults(func=_export_onnx)
