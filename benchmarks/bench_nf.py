"""Throughput of nf-after-shield: muons/s for batches of 10^3 to 10^6, every engine in one run.

Run:  python benchmarks/bench_nf.py [--threads 2] [--sizes 1000 10000 100000 1000000] [--compile] [--sofie]
      [--device cuda] [--json out.json]

Engines (all on the bundled weights, latent sigma 1, the same noise):

* ``torch eager``: `NoiseToMuon` on the whole batch under ``torch.inference_mode``;
* ``torch chunked``: `NoiseToMuon` in `run_chunked`'s 4096-row calls;
* ``fast``: the plugin's path, `FastNoiseToMuon` (same output bit for bit; folded
  weights, in-place feature-major ops, 4096-muon blocks over ``--threads`` Python
  threads of one intra-op thread each);
* ``fast intra-op``: the same on one Python thread with ``--threads`` torch intra-op threads;
* ``torch.compile`` (``--compile``): the compiled `NoiseToMuon` over 4096-row calls;
* ``onnxruntime``: the exported graph, ``--threads`` intra-op threads, whole batch;
* ``onnxruntime 4096``: the same graph in 4096-row calls, one session of one intra-op
  thread per Python thread (``--threads`` of them), its best configuration here;
* ``SOFIE C++`` (``--sofie``): the generated code in ``adapters/cpp/sofie_driver.cpp``
  (timing loop inside C++, OpenBLAS with ``--threads`` threads);
* ``zuko peer``: zuko's RealNVP of the same size (untrained weights: the speed does not
  depend on them) with the same preprocessing, chunked like ours.

Each engine runs each size for at least ``--seconds`` seconds (best of 3 repeats); the
table prints muons/s and the ratio to eager torch in the same run.  With ``--device
cuda`` the torch engines run on the GPU (synchronised), the others are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from shipfastsim.plugins.gan_target import run_chunked
from shipfastsim.plugins.nf_after_shield import BUNDLED_WEIGHTS
from shipfastsim.plugins.nf_after_shield.fast import BLOCK, FastNoiseToMuon
from shipfastsim.plugins.nf_after_shield.model import NoiseToMuon, load_flow


def _rate(call: Callable[[], object], n: int, seconds: float, device: torch.device, repeats: int = 3) -> float:
    """Best muons/s of ``repeats`` repeats, each running ``call`` for at least ``seconds``
    (the engines are warmed up on a small batch first, in `main`)."""
    best = 0.0
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while True:
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            done += n
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, done / elapsed)
    return best


def _noise(n: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.cat([torch.randn(n, 5, generator=g), torch.rand(n, 1, generator=g)], 1).to(device)


def _sofie_rate(n: int, threads: int, folder: Path) -> float:
    from shipfastsim.adapters.onnx_export import export_component
    from shipfastsim.adapters.sofie_codegen import CPP_DIR, compile_program

    out = folder / "sofie"
    if not (out / "driver").exists():
        result = export_component("nf-after-shield", out, max_batch=4096)
        compile_program(CPP_DIR / "sofie_driver.cpp", result.sofie.binding, out / "driver",
                        flags=("-O3", "-march=native"))
        (out / "weights").write_text(str(result.sofie.weights))
    weights = (out / "weights").read_text()
    _noise(n, torch.device("cpu")).numpy().tofile(out / "in.bin")
    env = os.environ | {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    repeats = max(1, int(2e6 // n))
    runs = [subprocess.run([str(out / "driver"), weights, str(out / "in.bin"), str(out / "out.bin"), str(n),
                            str(repeats)], check=True, capture_output=True, text=True, env=env) for _ in range(3)]
    return 1e9 / min(float(r.stdout.split()[-1]) for r in runs)


def _onnxruntime_engines(threads: int) -> dict[str, Callable[[torch.Tensor], object]]:
    """The exported graph on the whole batch with ``threads`` intra-op threads, and in
    4096-row calls over ``threads`` Python threads, each with its own one-thread session
    (onnxruntime releases the GIL while it runs)."""
    import onnxruntime as ort

    from shipfastsim.adapters.onnx_export import export_onnx, get_export_description

    folder = Path(tempfile.mkdtemp(prefix="bench_nf_"))
    path = export_onnx(get_export_description("nf-after-shield"), folder / "nf.onnx")

    def session(intra: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = intra, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    whole, sessions = session(threads), [session(1) for _ in range(threads)]
    pool = ThreadPoolExecutor(threads)

    def blocks(k: int, noise: np.ndarray) -> None:
        for start in range(k * BLOCK, len(noise), threads * BLOCK):
            sessions[k].run(None, {"noise": noise[start:start + BLOCK]})

    def chunked(x: torch.Tensor) -> None:
        noise = x.numpy()
        list(pool.map(blocks, range(threads), [noise] * threads))

    return {"onnxruntime": lambda x: whole.run(None, {"noise": x.numpy()}), "onnxruntime 4096": chunked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch, onnxruntime and OpenBLAS")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per measurement [s]")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (about a minute to build)")
    parser.add_argument("--sofie", action="store_true", help="also time the SOFIE C++ code (needs g++ and BLAS)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (the best is kept)")
    parser.add_argument("--json", type=Path, help="write the table as JSON")
    parser.add_argument("--engines", nargs="+", help="time only these engines (torch eager, the reference of the "
                                                     "ratios, always runs); default: all")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    flow = load_flow(BUNDLED_WEIGHTS, device)
    module = NoiseToMuon(flow).eval()
    from shipfastsim.plugins.nf_after_shield.peer import ZukoPeer

    peer = NoiseToMuon(ZukoPeer(flow.cpu()).to(device).eval(), 1.0).eval()
    flow.to(device)
    engines: dict[str, Callable[[torch.Tensor], object]] = {
        "torch eager": module,
        "torch chunked": lambda x: run_chunked(module, x),
    }
    if device.type == "cpu":
        fast, fast_intra = FastNoiseToMuon(flow, threads=args.threads), FastNoiseToMuon(flow, threads=1)
        engines |= {"fast": fast.columns, "fast intra-op": fast_intra.columns}
    if args.compile:
        start = time.perf_counter()
        compiled = torch.compile(module, dynamic=False)
        with torch.inference_mode():
            run_chunked(compiled, _noise(BLOCK, device))
        print(f"torch.compile: {time.perf_counter() - start:.0f} s to compile", flush=True)
        engines["torch.compile"] = lambda x: run_chunked(compiled, x)
    if device.type == "cpu":
        engines |= _onnxruntime_engines(args.threads)
    engines["zuko peer"] = lambda x: run_chunked(peer, x)
    if args.engines:
        engines = {k: v for k, v in engines.items() if k == "torch eager" or k in args.engines}
    rows = []
    print(f"nf-after-shield ({sum(p.numel() for p in flow.parameters())} parameters; zuko peer "
          f"{peer.flow.parameter_count()}), {args.threads} threads, {device}, load average "
          f"{os.getloadavg()[0]:.2f}: muons/s")
    header = f"{'engine':<18}" + "".join(f"{n:>12.0e}" for n in args.sizes)
    print(header, flush=True)
    eager = {}
    with torch.inference_mode():
        for name, engine in engines.items():
            engine(_noise(1000, device))  # warm-up (allocations, compilation)
            rates = []
            for n in args.sizes:
                noise = _noise(n, device)
                rates.append(_rate(lambda engine=engine, noise=noise: engine(noise), n, args.seconds, device,
                                   args.repeats))
            if name == "torch eager":
                eager = dict(zip(args.sizes, rates, strict=True))
            rows.append({"engine": name, "muons_per_s": dict(zip(args.sizes, rates, strict=True))})
            print(f"{name:<18}" + "".join(f"{r:>12.3g}" for r in rates), flush=True)
    if args.sofie and device.type == "cpu" and (not args.engines or "SOFIE C++" in args.engines):
        folder = Path(tempfile.mkdtemp(prefix="bench_nf_sofie_"))
        rates = [_sofie_rate(n, args.threads, folder) for n in args.sizes]
        rows.append({"engine": "SOFIE C++", "muons_per_s": dict(zip(args.sizes, rates, strict=True))})
        print(f"{'SOFIE C++':<18}" + "".join(f"{r:>12.3g}" for r in rates))
    print("ratio to torch eager:")
    for row in rows:
        print(f"{row['engine']:<18}" + "".join(f"{row['muons_per_s'][n] / eager[n]:>12.2f}" for n in args.sizes))
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "device": str(device), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
