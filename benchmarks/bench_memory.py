"""Peak memory of a whole run against its size: chunks stream to disk, nothing grows.

Run:  python benchmarks/bench_memory.py [--sizes 1e6 1e7 1e8] [--chunk 1000000] [--muons-per-file N]

Each size is one ``shipfastsim run`` in a fresh process: the shipped target sample
replayed with wrap-around (fairship-file) and rotated 100 times in phi, written as
one FairShip ntuple (or files of N muons).  The peak resident memory is the
operating system's account of the finished process (``wait4`` ru_maxrss: the largest
single process among it and the children it waited for).  A run that kept whole-run
arrays would grow by at least 60 bytes per muon (15 float32 branches): 6 GB at 10^8.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from shipfastsim.data import TARGET_SAMPLE

COPIES = 100


def write_config(directory: Path, muons: int, chunk: int, muons_per_file: int | None) -> Path:
    """The cheap chain (replay x phi-rotation) that writes ``muons`` muons."""
    document = {
        "version": 1,
        "run": {"events": muons // COPIES, "chunk_size": max(1, chunk // COPIES), "seed": 1,
                "output": {"path": str(directory / "muons.root"), "muons_per_file": muons_per_file}},
        "stages": [{"generator": "fairship-file", "params": {"files": [str(TARGET_SAMPLE)], "wrap": True}},
                   {"augmenter": "phi-rotation", "params": {"copies": COPIES}}],
    }
    path = directory / "memory.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS [MiB] of ``command`` run to completion (must succeed)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 1e8], help="muons written per run")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="muons per chunk after phi-rotation")
    parser.add_argument("--muons-per-file", type=int, default=None, help="split the output (default: one file)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the runs write (default: a temp dir)")
    args = parser.parse_args()
    print(f"{'muons':>12} {'wall [s]':>9} {'muons/s':>10} {'peak RSS [MiB]':>15} {'output [MB]':>12}")
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            config = write_config(Path(tmp), int(size), args.chunk, args.muons_per_file)
            wall, peak = measure([sys.executable, "-m", "shipfastsim", "run", str(config), "--no-progress"])
            written = sum(p.stat().st_size for p in Path(tmp).glob("muons*.root")) / 1e6
        rows.append((int(size), wall, peak))
        print(f"{int(size):>12,} {wall:>9.1f} {size / wall:>10.3g} {peak:>15.0f} {written:>12.0f}", flush=True)
    (small, _, low), (large, _, high) = rows[0], rows[-1]
    if large > small:
        print(f"growth: {(high - low) / (large - small) * 1e7:.1f} MiB per 10^7 muons "
              f"(whole-run float32 branches would be {60e7 / 2**20:.0f} MiB per 10^7)")


if __name__ == "__main__":
    main()
