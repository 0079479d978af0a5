"""Muons per second of ``fast-shield`` versus the reference transport, same input.

Usage: python benchmarks/bench_fast_shield.py [--reference N] [--fast N] [--threads T] [--gpu-sizes N ...]

Both transports take the same phi-augmented target muons (`compare.target_sample`)
through the full TRY_2025 shield to ``shield_end`` on the CPU; the reference on the
first N_ref of them (it is slow), fast-shield on those same muons and on a chunk of
N_fast.  Prints muons/s and the ratio.  When torch sees a GPU, fast-shield also runs
there on chunks of each ``--gpu-sizes`` (after a warm-up), timed with synchronisation.
"""

from __future__ import annotations

import argparse
import time

import torch

from shipfastsim.plugins.fast_shield.compare import run_fast, run_reference, target_sample


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
    parser.add_argument("--reference", type=int, default=3000, help="muons through the reference")
    parser.add_argument("--fast", type=int, default=100_000, help="muons through fast-shield on the CPU")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-sizes", type=int, nargs="*", default=[10**6, 4 * 10**6])
    parser.add_argument("--skip-cpu", action="store_true", help="GPU figures only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    planes = ["shield_end"]
    if not args.skip_cpu:
        sample = target_sample(max(args.reference, args.fast), seed=1)
        head = sample.select(torch.arange(args.reference))
        run_fast(head.select(torch.arange(100)), planes, seed=0)  # load tables, warm caches
        ref, t_ref = _timed(lambda: run_reference(head, planes, seed=2))
        same, t_same = _timed(lambda: run_fast(head, planes, seed=3))
        big, t_big = _timed(lambda: run_fast(sample, planes, seed=4))
        r_ref, r_same, r_big = args.reference / t_ref, args.reference / t_same, len(sample) / t_big
        print(f"CPU, {torch.get_num_threads()} threads, shield_end of TRY_2025:")
        print(f"  reference   {args.reference:>9d} muons {t_ref:8.2f} s {r_ref:12.0f} muons/s "
              f"({ref.steps} steps, {ref.reached['shield_end'].float().mean():.3f} reach)")
        print(f"  fast-shield {args.reference:>9d} muons {t_same:8.2f} s {r_same:12.0f} muons/s "
              f"({same.steps} steps, {same.reached['shield_end'].float().mean():.3f} reach)")
        print(f"  fast-shield {len(sample):>9d} muons {t_big:8.2f} s {r_big:12.0f} muons/s ({big.steps} steps)")
        print(f"  speed-up, same chunk: {r_same / r_ref:.0f}x; fast-shield chunk of {len(sample)}: "
              f"{r_big / r_ref:.0f}x")
    if torch.cuda.is_available():
        device = "cuda"
        print(f"GPU: {torch.cuda.get_device_name()}")
        for n in args.gpu_sizes:
            sample = target_sample(n, seed=5)
            run_fast(sample.select(torch.arange(min(n, 10**5))), planes, seed=0, device=device)  # warm-up
            hits, t = _timed(lambda s=sample: run_fast(s, planes, seed=6, device=device), device)
            print(f"  fast-shield {n:>9d} muons {t:8.3f} s {n / t:12.0f} muons/s ({hits.steps} steps, "
                  f"{hits.reached['shield_end'].float().mean():.3f} reach)")


if __name__ == "__main__":
    main()
