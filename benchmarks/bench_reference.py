"""Muons per second of the reference propagator through the full TRY_2025 shield.

Usage: python benchmarks/bench_reference.py [N] [THREADS]  (defaults 10000 muons, 2 threads)
Prints the wall time, muons/s, the number of steps and the fractions reaching the
shield end and the decay-vessel aperture by charge.
"""

from __future__ import annotations

import sys
import time

import torch

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.data import TARGET_SAMPLE
from shipfastsim.geometry import load_geometry
from shipfastsim.plugins.reference.summary import format_summary, transport_summary
from shipfastsim.plugins.reference.transport import ReferenceTransport


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    batch, _ = read_ntuple(TARGET_SAMPLE)
    batch = batch.select(torch.arange(min(n, len(batch))))
    t0 = time.perf_counter()
    transport = ReferenceTransport(load_geometry(GEOMETRY_DIR / "ship_try2025.yaml"))
    t1 = time.perf_counter()
    result = transport.propagate(torch.stack([batch.x, batch.y, batch.z], 1),
                                 torch.stack([batch.px, batch.py, batch.pz], 1), batch.charge,
                                 transport.geometry.plane_names(), torch.Generator().manual_seed(1))
    t2 = time.perf_counter()
    print(f"set-up (tables) {t1 - t0:.2f} s; {len(batch)} muons in {t2 - t1:.1f} s = "
          f"{len(batch) / (t2 - t1):.0f} muons/s on {torch.get_num_threads()} threads, {result.steps} steps")
    print(format_summary(transport_summary(batch.p, batch.charge, result)))


if __name__ == "__main__":
    main()
