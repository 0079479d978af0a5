"""Benchmark: target-generator speed [muons/s] (gan-target, flow-target) against replaying a FairShip file.

For batch sizes 10^3 .. 10^6 it times, in one run, for each of ``gan`` and ``flow``:

* ``eager``: the component through the registry hook (noise, network, MuonBatch in
  float64), as a production run calls it;
* ``module``: the bare network under ``torch.inference_mode`` (float32, noise
  drawn), over chunks of `CHUNK_SIZE` rows as the component runs it;
* ``onnxruntime``: the same module exported to ONNX and run by onnxruntime
  (when onnx and onnxruntime are installed), over the same chunks;

and ``file replay``, the ``fairship-file`` generator sampling the shipped 10k file;
it prints the ratio of the fastest GAN path to file replay and of the fastest flow
path to the fastest GAN path.  On a machine shared with other
jobs, ``--repeats N`` times each entry N times and keeps the fastest (the least
disturbed).  Usage::

    python benchmarks/bench_gan.py [--threads 2] [--device cpu] [--max-batch 1000000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import torch

from shipfastsim.components import ChunkContext, Stage
from shipfastsim.data import TARGET_SAMPLE
from shipfastsim.plugins.fairship_file import COMPONENT as FILE_COMPONENT
from shipfastsim.plugins.gan_target import draw_noise, run_chunked
from shipfastsim.registry import get_registry


def _rate(call: Callable[[int], object], n: int, device: torch.device, min_seconds: float = 1.0) -> float:
    call(n)  # warm up (model load, allocations)
    repeats, start = 0, time.perf_counter()
    while True:
        call(n)
        repeats += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed > min_seconds or repeats >= 50:
            return repeats * n / elapsed


def _hook_call(component: str, params: dict, device: torch.device) -> Callable[[int], object]:
    stage = Stage(kind="generator", component=component, params=params, device=device)
    hook = get_registry().hook.shipfastsim_generate_muons

    def call(n: int):
        context = ChunkContext(0, 0, torch.Generator(device=device).manual_seed(1), device)
        return hook(stage=stage, n_muons=n, context=context)

    return call


def _onnx_call(module: torch.nn.Module, noise_dim: int) -> Callable[[int], object] | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    buffer = io.BytesIO()
    example = torch.cat([torch.randn(8, noise_dim), torch.rand(8, 1)], dim=1)
    try:
        torch.onnx.export(module, (example,), buffer, input_names=["noise"], output_names=["muon"],
                          dynamic_axes={"noise": {0: "n"}, "muon": {0: "n"}}, opset_version=17, dynamo=False)
    except Exception as error:  # exporter missing or failing: report and go on
        print(f"onnx export failed: {error}")
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)

    def call(n: int):
        noise = draw_noise(n, noise_dim, generator)
        return run_chunked(lambda part: session.run(None, {"noise": part.numpy()})[0], noise)

    return call


def _loader(component: str):
    if component == "flow-target":
        from shipfastsim.plugins.flow_target.model import load_flow

        return load_flow
    from shipfastsim.plugins.gan_target.model import load_generator

    return load_generator


def _paths(component: str, short: str, device: torch.device) -> dict[str, Callable[[int], object]]:
    """Eager (registry hook), bare module and onnxruntime paths of one target generator."""
    defaults = get_registry().get("generator", component).spec.defaults()
    module = _loader(component)(defaults["weights"], device)
    noise_dim = module.noise_width - 1

    def bare(n: int):
        generator = torch.Generator(device=device).manual_seed(1)
        with torch.inference_mode():
            return module.generate(draw_noise(n, noise_dim, generator))

    paths = {f"{short} eager": _hook_call(component, defaults, device), f"{short} module": bare}
    if device.type == "cpu":
        onnx = _onnx_call(_loader(component)(defaults["weights"]), noise_dim)
        if onnx is not None:
            paths[f"{short} onnxruntime"] = onnx
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1, help="time each entry this often, keep the fastest")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    replay = _hook_call("fairship-file", FILE_COMPONENT.defaults() | {"files": [str(TARGET_SAMPLE)], "order": "sample"},
                        device)
    paths = _paths("gan-target", "gan", device) | _paths("flow-target", "flow", device) | {"file replay": replay}
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"target generators [muons/s] on {name}")
    print(f"{'batch':>9} " + " ".join(f"{p:>16}" for p in paths) + "   best gan / replay, best flow / best gan")
    size = 1000
    while size <= args.max_batch:
        rates = {p: max(_rate(call, size, device) for _ in range(args.repeats)) for p, call in paths.items()}
        gan = max(v for p, v in rates.items() if p.startswith("gan"))
        flow = max(v for p, v in rates.items() if p.startswith("flow"))
        print(f"{size:>9} " + " ".join(f"{rates[p]:>16.3e}" for p in paths)
              + f"   {gan / rates['file replay']:.3f}, {flow / gan:.2f}")
        size *= 10


if __name__ == "__main__":
    main()
