"""Muons per second of ``fast-shield`` and the reference transport against Geant4 (``geant4-shield``), same input.

Usage: python benchmarks/bench_fast_shield.py [--geant4 N] [--reference N] [--fast N] [--threads T]
       [--gpu-sizes N ...]

The transports take the same phi-augmented target muons (`compare.target_sample`)
through the full TRY_2025 shield to ``shield_end`` on the CPU: Geant4 on the first
N_geant4 of them (one thread: Geant4 runs one event at a time per process), the
reference on the first N_ref, fast-shield on those same muons and on a chunk of
N_fast.  Each row gives wall-clock muons/s and muons per CPU-second (the process's CPU
time, all its threads: the figure per core); the ratios to Geant4 are per core.  Both
are vectorised over the chunk and pay a fixed cost per step and tensor operation, so
compare equal chunks: the reference makes 642-839 muons/s on 3000-muon chunks and
2,445 on 10^5 (one thread).  Prints muons/s and the ratio.  When torch sees a GPU, fast-shield also runs
there on chunks of each ``--gpu-sizes`` (after a warm-up), timed with synchronisation.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from shipfastsim.plugins.fast_shield import make_transport
from shipfastsim.plugins.fast_shield.compare import run_reference, target_sample


def run_fast(batch, planes, seed, params=None, device="cpu", transport=None):
    """fast-shield on a batch; a given transport is reused (compiled steps stay compiled)."""
    transport = transport or make_transport(params or {}, device)
    batch = batch.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    return transport.propagate(torch.stack([batch.x, batch.y, batch.z], 1),
                               torch.stack([batch.px, batch.py, batch.pz], 1), batch.charge, planes, generator)


def _timed(function, device: str = "cpu"):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def _cpu_timed(function):
    """Result, wall seconds and CPU seconds of the process (all threads)."""
    cpu = time.process_time()
    result, wall = _timed(function)
    return result, wall, time.process_time() - cpu


def run_geant4(batch, planes, seed):
    """geant4-shield (defaults: 10 cm cut, lateral displacement) on a batch, one event per 10^4 muons."""
    from shipfastsim.configs import GEOMETRY_DIR
    from shipfastsim.geometry import load_geometry
    from shipfastsim.plugins.geant4_shield.transport import Geant4Transport

    transport = Geant4Transport(load_geometry(GEOMETRY_DIR / "ship_try2025.yaml"))
    reached = []
    for first in range(0, len(batch), 10_000):
        part = batch.select(torch.arange(first, min(first + 10_000, len(batch))))
        result = transport.propagate(torch.stack([part.x, part.y, part.z], 1),
                                     torch.stack([part.px, part.py, part.pz], 1), part.charge, planes, seed + first)
        reached.append(result.reached[planes[0]])
    return torch.cat(reached)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geant4", type=int, default=20_000, help="muons through Geant4 (0: skip)")
    parser.add_argument("--reference", type=int, default=100_000, help="muons through the reference")
    parser.add_argument("--fast", type=int, default=100_000, help="muons through fast-shield on the CPU")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-sizes", type=int, nargs="*", default=[10**6, 4 * 10**6])
    parser.add_argument("--skip-cpu", action="store_true", help="GPU figures only")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    planes = ["shield_end"]
    if not args.skip_cpu:
        sample = target_sample(max(args.reference, args.fast), seed=1)
        head = sample.select(torch.arange(args.reference))
        plain, compiled = make_transport({}), make_transport({"compile": True})
        run_fast(head.select(torch.arange(1000)), planes, seed=0, transport=plain)  # warm caches
        if not args.no_compile:
            _, t_compile = _timed(lambda: run_fast(head.select(torch.arange(1000)), planes, seed=0,
                                                   transport=compiled))
        ref, t_ref, c_ref = _cpu_timed(lambda: run_reference(head, planes, seed=2))
        same, t_same, c_same = _cpu_timed(lambda: run_fast(head, planes, seed=3, transport=plain))
        big, t_big, c_big = _cpu_timed(lambda: run_fast(sample, planes, seed=4, transport=plain))
        r_ref, r_same, r_big = args.reference / t_ref, args.reference / t_same, len(sample) / t_big
        print(f"CPU, {torch.get_num_threads()} threads, shield_end of TRY_2025 (load average "
              f"{os.getloadavg()[0]:.1f} at the end):")
        g4_core = None
        if args.geant4:
            g4, t_g4, c_g4 = _cpu_timed(lambda: run_geant4(head.select(torch.arange(args.geant4)), planes, seed=1))
            g4_core = args.geant4 / c_g4
            print(f"  geant4      {args.geant4:>9d} muons {t_g4:8.2f} s {args.geant4 / t_g4:12.0f} muons/s "
                  f"{g4_core:10.0f} per CPU-s ({g4.float().mean():.3f} reach)")

        def per_core(n, cpu):
            rate = n / cpu
            return f"{rate:10.0f} per CPU-s" + (f" = {rate / g4_core:6.1f}x Geant4 per core" if g4_core else "")

        print(f"  reference   {args.reference:>9d} muons {t_ref:8.2f} s {r_ref:12.0f} muons/s "
              f"{per_core(args.reference, c_ref)} ({ref.steps} steps, {ref.reached['shield_end'].float().mean():.3f} "
              "reach)")
        print(f"  fast-shield {args.reference:>9d} muons {t_same:8.2f} s {r_same:12.0f} muons/s "
              f"{per_core(args.reference, c_same)} ({same.steps} steps, "
              f"{same.reached['shield_end'].float().mean():.3f} reach)")
        print(f"  fast-shield {len(sample):>9d} muons {t_big:8.2f} s {r_big:12.0f} muons/s "
              f"{per_core(len(sample), c_big)} ({big.steps} steps)")
        print(f"  speed-up over the reference: same chunk {r_same / r_ref:.0f}x; chunk of {len(sample)} "
              f"{r_big / r_ref:.0f}x (eager)")
        if not args.no_compile:
            comp, t_comp = _timed(lambda: run_fast(sample, planes, seed=4, transport=compiled))
            r_comp = len(sample) / t_comp
            print(f"  fast-shield {len(sample):>9d} muons {t_comp:8.2f} s {r_comp:12.0f} muons/s, torch.compile "
                  f"(compiled once in {t_compile:.0f} s, not counted; {comp.steps} steps): "
                  f"{r_comp / r_ref:.0f}x the reference")
    if torch.cuda.is_available():
        device = "cuda"
        print(f"GPU: {torch.cuda.get_device_name()}")
        for n in args.gpu_sizes:
            sample = target_sample(n, seed=5)
            transport = make_transport({"compile": True}, device)
            run_fast(sample.select(torch.arange(min(n, 10**5))), planes, seed=0, transport=transport)  # compile
            sample = sample.to(device)
            hits, t = _timed(lambda s=sample, tr=transport: run_fast(s, planes, seed=6, transport=tr), device)
            print(f"  fast-shield {n:>9d} muons {t:8.3f} s {n / t:12.0f} muons/s ({hits.steps} steps, "
                  f"{hits.reached['shield_end'].float().mean():.3f} reach)")


if __name__ == "__main__":
    main()
