"""Muons per second of ``fast-shield`` versus the reference transport, same input.

Usage: python benchmarks/bench_fast_shield.py [--reference N] [--fast N] [--threads T] [--gpu-sizes N ...]

Both transports take the same phi-augmented target muons (`compare.target_sample`)
through the full TRY_2025 shield to ``shield_end`` on the CPU; the reference on the
first N_ref of them, fast-shield on those same muons and on a chunk of N_fast.  Both
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        ref, t_ref = _timed(lambda: run_reference(head, planes, seed=2))
        same, t_same = _timed(lambda: run_fast(head, planes, seed=3, transport=plain))
        big, t_big = _timed(lambda: run_fast(sample, planes, seed=4, transport=plain))
        r_ref, r_same, r_big = args.reference / t_ref, args.reference / t_same, len(sample) / t_big
        print(f"CPU, {torch.get_num_threads()} threads, shield_end of TRY_2025 (load average "
              f"{os.getloadavg()[0]:.1f} at the end):")
        print(f"  reference   {args.reference:>9d} muons {t_ref:8.2f} s {r_ref:12.0f} muons/s "
              f"({ref.steps} steps, {ref.reached['shield_end'].float().mean():.3f} reach)")
        print(f"  fast-shield {args.reference:>9d} muons {t_same:8.2f} s {r_same:12.0f} muons/s "
              f"({same.steps} steps, {same.reached['shield_end'].float().mean():.3f} reach)")
        print(f"  fast-shield {len(sample):>9d} muons {t_big:8.2f} s {r_big:12.0f} muons/s ({big.steps} steps)")
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
