"""Where fast-shield's steps go: each step classified by what ended it, per shield segment, and the floor it implies.

Usage: python benchmarks/step_profile.py [--muons N] [--timed N] [--geant4 N] [--threads T] [--geometry G]

The same phi-augmented target muons as ``bench_fast_shield.py`` (`compare.target_sample`)
go through the full shield to ``shield_end`` with fast-shield's default steps; the first
``--muons`` of them are traced (their state after every step), and every step is put in
one class, from its length and where it ended:

* **segment edge**: it ended on a z edge of the geometry's segments (exact boundary
  crossing: at least one per segment a muon crosses, whatever the step control);
* **long**: a full ``long_step`` (the lateral safety allowed it), or ``air_step`` in air
  (equal by default);
* **dense**: a full ``dense_step``, taken where the safety is shorter than it (dense
  zones, and magnet iron near an edge);
* **between**: between the two (the safety's reach);
* **short**: shorter than ``dense_step`` without an edge (the energy-loss fraction and
  bending limits of low-momentum muons).

For the dense steps in the magnets the script gives the part of them taken where the
lateral safety is 0: in the corner band of FairShip's Arb8 sections (dy < |y| < dy + dyy),
whose diagonal edges the safety does not measure.  It then times fast-shield on
``--timed`` muons (CPU time of the process, ``--threads`` threads: nanoseconds per step)
and, where ``--geant4`` > 0, Geant4 on that many muons in the same run, and prints the
floor: the muons per CPU-second if only the segment-edge steps were left at today's cost
per step, and its ratio to Geant4 per core.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from bench_fast_shield import _cpu_timed, run_fast, run_geant4

from shipfastsim.plugins.fast_shield import fast_shield_steps, make_transport
from shipfastsim.plugins.fast_shield.compare import target_sample

#: cm: a step ending this close to a segment edge ended on it; a step this close to
#: ``long_step`` or ``dense_step`` is one.
EDGE_TOLERANCE, LENGTH_TOLERANCE = 0.02, 0.05
CLASSES = ("segment edge", "long", "dense", "between", "short")


def step_starts(start: np.ndarray, trace: np.ndarray) -> np.ndarray:
    """(N, S, 3) position [cm] at the start of each traced step: ``start`` (N, 3), then the
    positions after the steps before it (``trace`` (N, S, >= 3))."""
    return np.concatenate([start[:, None, :3], trace[:, :-1, :3]], 1)


def classify(start: np.ndarray, trace: np.ndarray, edges: np.ndarray, long_step: float, dense_step: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class index per step (-1: no step), step length [cm], segment of the step's
    midpoint) of traced muons: ``start`` (N, 3) [cm], ``trace`` (N, S, >= 3) positions
    after each step (NaN after the last), ``edges`` the segments' z edges [cm]."""
    before = step_starts(start, trace)
    length = np.linalg.norm(trace[:, :, :3] - before, axis=2)
    valid = np.isfinite(length)
    z_after = np.where(valid, trace[:, :, 2], np.inf)
    nearest = np.abs(z_after[..., None] - edges[None, None, :]).min(axis=2)
    at_edge = valid & (nearest < EDGE_TOLERANCE)
    free = valid & ~at_edge
    kind = np.full(length.shape, -1)
    kind[at_edge] = 0
    # every free step in exactly one class (the air steps outside the magnets, air_step = long_step by
    # default, count as long)
    kind[free & (length >= long_step - LENGTH_TOLERANCE)] = 1
    kind[free & (np.abs(length - dense_step) < LENGTH_TOLERANCE)] = 2
    kind[free & (length >= dense_step + LENGTH_TOLERANCE) & (length < long_step - LENGTH_TOLERANCE)] = 3
    kind[free & (length <= dense_step - LENGTH_TOLERANCE)] = 4
    middle = 0.5 * (np.where(valid, trace[:, :, 2], 0.0) + before[:, :, 2])
    return kind, length, np.searchsorted(edges, middle) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--muons", type=int, default=4000, help="muons traced step by step")
    parser.add_argument("--timed", type=int, default=200_000, help="muons timed through fast-shield")
    parser.add_argument("--geant4", type=int, default=0, help="muons timed through Geant4 in the same run (0: skip)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of fast-shield")
    parser.add_argument("--geometry", default=None, help="shield geometry YAML (default: the default geometry)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = {"geometry": args.geometry} if args.geometry else {}
    transport = make_transport(params)
    batch = target_sample(max(args.muons, args.timed, args.geant4), args.seed)
    planes = ["shield_end"]

    traced = batch.select(torch.arange(args.muons))
    start = torch.stack([traced.x, traced.y, traced.z], 1)
    result, trace = transport.trace(start, torch.stack([traced.px, traced.py, traced.pz], 1), traced.charge,
                                    planes, torch.Generator().manual_seed(args.seed), 1000)
    edges = np.asarray(transport.geo.edges)
    control = fast_shield_steps(params)
    long_step, dense_step = control["long_step"], control["dense_step"]
    kind, _, segment = classify(start.numpy(), trace.numpy(), edges, long_step, dense_step)
    n = args.muons
    steps = result.steps_per_muon.numpy().astype(np.float64)
    assert (kind >= 0).sum() == steps.sum(), "a muon took more steps than were traced"
    print(f"{n:,} muons traced: {steps.mean():.1f} steps per muon "
          f"({', '.join(f'{name} {(kind == k).sum() / n:.1f}' for k, name in enumerate(CLASSES))})")
    print("| segment z [cm] | steps per muon | " + " | ".join(CLASSES) + " |")
    print("|---|---|" + "---|" * len(CLASSES))
    for s in range(len(edges) - 1):
        here = (segment == s) & (kind >= 0)
        if here.sum() >= 0.05 * n:
            counts = " | ".join(f"{((kind == k) & here).sum() / n:.2f}" for k in range(len(CLASSES)))
            print(f"| {edges[s]:.1f}-{edges[s + 1]:.1f} | {here.sum() / n:.2f} | {counts} |")

    from shipfastsim.geometry.kernel import query_points

    before = step_starts(start.numpy(), trace.numpy())
    # the kernel's segment k lies between edges k - 1 and k (its segment 0 is below the first edge)
    in_magnets = (kind == 2) & (transport.geo.magnets[np.clip(segment + 1, 0, len(edges)), 0] > 0)
    points = before[in_magnets]
    safety = query_points(transport.geo, points[:, 0], points[:, 1], points[:, 2])[:, 6:8]
    corner = (safety[:, 1] == 0.0).mean() if len(points) else 0.0
    print(f"dense steps in magnet segments: {in_magnets.sum() / n:.1f} per muon, {corner:.0%} of them where the "
          f"lateral safety in y is 0 (the Arb8 corner band)")

    timed = batch.select(torch.arange(args.timed))
    run_fast(timed.select(torch.arange(min(1000, args.timed))), planes, args.seed, transport=transport)  # compile
    timed_result, wall, cpu = _cpu_timed(lambda: run_fast(timed, planes, args.seed, transport=transport))
    total = float(timed_result.steps_per_muon.sum())
    ns_per_step = cpu / total * 1e9
    edge_steps = (kind == 0).sum() / n
    floor_rate = 1e9 / (edge_steps * ns_per_step)
    print(f"fast-shield: {args.timed / cpu:,.0f} muons per CPU-second ({args.timed / wall:,.0f}/s on "
          f"{args.threads} threads), {total / args.timed:.1f} steps per muon, {ns_per_step:.0f} ns per step")
    print(f"floor with only the segment-edge steps ({edge_steps:.1f} per muon) at {ns_per_step:.0f} ns: "
          f"{floor_rate:,.0f} muons per CPU-second")
    if args.geant4 > 0:
        g4 = batch.select(torch.arange(args.geant4))
        _, _, g4_cpu = _cpu_timed(lambda: run_geant4(g4, planes, args.seed, transport.geometry))
        g4_rate = args.geant4 / g4_cpu
        print(f"geant4-shield: {g4_rate:,.0f} muons per CPU-second; fast-shield {args.timed / cpu / g4_rate:.1f}x "
              f"per core, its floor {floor_rate / g4_rate:.1f}x")


if __name__ == "__main__":
    main()
