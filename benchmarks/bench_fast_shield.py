"""Muons per second of ``fast-shield`` and the reference transport against Geant4 (``geant4-shield``), same input.

Usage: python benchmarks/bench_fast_shield.py [--geant4 N] [--reference N] [--fast N] [--threads T]
       [--gpu-sizes N ...] [--geometry configs/geometry/ship_try2025.yaml]

The transports take the same phi-augmented target muons (`compare.target_sample`)
through the full shield (the default geometry, TRY_2026, unless ``--geometry`` names
another) to ``shield_end`` on the CPU, in one run: Geant4 on
the first N_geant4 of them (one thread: Geant4 runs one event at a time per process),
the reference on the first N_ref, fast-shield (the compiled kernel, ``--threads``
threads) on the first N_fast.  Each row gives wall-clock muons/s and muons per
CPU-second (the process's CPU time, all its threads: the figure per core); the ratios
to Geant4 are per core.  fast-shield's row adds its profile: steps per muon and CPU
nanoseconds per step.  Where numba sees a CUDA device, fast-shield also runs there on
each of ``--gpu-sizes`` muons (after a compiling warm-up; host-device transfers
included); otherwise the script says that there is no GPU figure.
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


def run_geant4(batch, planes, seed, geometry):
    """geant4-shield (defaults: 10 cm cut, lateral displacement) through ``geometry`` on a batch,
    one event per 10^4 muons."""
    from shipfastsim.plugins.geant4_shield.transport import Geant4Transport

    transport = Geant4Transport(geometry)
    reached = []
    for first in range(0, len(batch), 10_000):
        part = batch.select(torch.arange(first, min(first + 10_000, len(batch))))
        result = transport.propagate(torch.stack([part.x, part.y, part.z], 1),
                                     torch.stack([part.px, part.py, part.pz], 1), part.charge, planes, seed + first)
        reached.append(result.reached[planes[0]])
    return torch.cat(reached)


def _profile(result, cpu_seconds: float, n: int) -> str:
    """Steps per muon and CPU nanoseconds per step of a fast-shield run."""
    steps = int(result.steps_per_muon.sum())
    return f"{steps / n:.1f} steps/muon, {cpu_seconds / steps * 1e9:.0f} ns per step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geant4", type=int, default=20_000, help="muons through Geant4 (0: skip)")
    parser.add_argument("--reference", type=int, default=20_000, help="muons through the reference (0: skip)")
    parser.add_argument("--fast", type=int, default=10**6, help="muons through fast-shield on the CPU")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of fast-shield and the reference")
    parser.add_argument("--gpu-sizes", type=int, nargs="*", default=[10**6, 4 * 10**6])
    parser.add_argument("--skip-cpu", action="store_true", help="GPU figures only")
    parser.add_argument("--geometry", default=None, help="shield geometry YAML (default: the default geometry)")
    args = parser.parse_args()
    import numba

    from shipfastsim.configs import DEFAULT_GEOMETRY
    from shipfastsim.geometry import load_geometry

    geometry_path = str(args.geometry or DEFAULT_GEOMETRY)
    geometry = load_geometry(geometry_path)

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    planes = ["shield_end"]
    if not args.skip_cpu:
        sample = target_sample(max(args.reference, args.geant4, args.fast), seed=1)
        transport = make_transport({"geometry": geometry_path})
        _, t_compile = _timed(lambda: run_fast(sample.select(torch.arange(100)), planes, seed=0,
                                               transport=transport))
        print(f"CPU, {args.threads} threads, shield_end of {geometry.name} (fast-shield compiled in {t_compile:.0f} s, "
              "not counted):")
        g4_core = None
        if args.geant4:
            g4, t_g4, c_g4 = _cpu_timed(lambda: run_geant4(sample.select(torch.arange(args.geant4)), planes,
                                                           seed=1, geometry=geometry))
            g4_core = args.geant4 / c_g4
            print(f"  geant4      {args.geant4:>9d} muons {t_g4:8.2f} s {args.geant4 / t_g4:12.0f} muons/s "
                  f"{g4_core:10.0f} per CPU-s ({g4.float().mean():.4f} reach)")

        def per_core(n, cpu):
            rate = n / cpu
            return f"{rate:10.0f} per CPU-s" + (f" = {rate / g4_core:6.1f}x Geant4 per core" if g4_core else "")

        if args.reference:
            run_reference(sample.select(torch.arange(10)), planes, seed=0, geometry=geometry)  # compiles, not counted
            head = sample.select(torch.arange(args.reference))
            ref, t_ref, c_ref = _cpu_timed(lambda: run_reference(head, planes, seed=2, geometry=geometry))
            print(f"  reference   {args.reference:>9d} muons {t_ref:8.2f} s {args.reference / t_ref:12.0f} muons/s "
                  f"{per_core(args.reference, c_ref)} ({ref.reached['shield_end'].float().mean():.4f} reach)")
        fast, t_fast, c_fast = _cpu_timed(lambda: run_fast(sample.select(torch.arange(args.fast)), planes, seed=3,
                                                           transport=transport))
        print(f"  fast-shield {args.fast:>9d} muons {t_fast:8.2f} s {args.fast / t_fast:12.0f} muons/s "
              f"{per_core(args.fast, c_fast)} ({fast.reached['shield_end'].float().mean():.4f} reach; "
              f"{_profile(fast, c_fast, args.fast)})")
        print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
    from numba import cuda

    if cuda.is_available():
        print(f"GPU: {cuda.get_current_device().name}")
        transport = make_transport({"geometry": geometry_path}, "cuda")
        for n in args.gpu_sizes:
            sample = target_sample(n, seed=5)
            run_fast(sample.select(torch.arange(min(n, 10**4))), planes, seed=0, transport=transport)  # compile
            hits, t = _timed(lambda s=sample, tr=transport: run_fast(s, planes, seed=6, transport=tr))
            print(f"  fast-shield {n:>9d} muons {t:8.3f} s {n / t:12.0f} muons/s "
                  f"({hits.reached['shield_end'].float().mean():.4f} reach, transfers included)")
    else:
        print("GPU: no CUDA device on this machine (no GPU figure)")


if __name__ == "__main__":
    main()
