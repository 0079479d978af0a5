"""Speed-up of the whole chain from the mlp-filter, at the same output statistics.

Run:  python benchmarks/bench_filter_chain.py [--events 20000] [--copies 10] [--chunk 10000] [--threads 1]

The chain gan-target -> phi-rotation -> [mlp-filter] -> fast-shield (plane
decay_vessel) runs three times on the same generated muons (every stage of chunk k
seeded from (seed, k, stage) as in a production run): without the filter, with the
filter in ``cut`` mode, in the default ``unbiased`` mode (Russian roulette, q =
``--keep-probability``) and in unbiased mode at a looser working point (recall 0.9 on
the validation split, no confidence margin, q = 0.1).  For each it prints the CPU
seconds per stage (one thread, after a warm-up chunk: on a shared machine CPU time is
the honest measure of work), the P1 muons written (inside the decay-vessel entrance
aperture), their weighted count and P1 muons per CPU second; the speed-up is the ratio
of P1 muons per second to the chain without the filter, at the same output statistics.

The roulette's survivors are rare and heavy (weight w/q), so a short run rarely holds
one that reaches P1 and its realised (sum w)^2 / sum w^2 says nothing.  The expected
statistical cost is the variance factor r + (1 - r)/q per unit of dangerous weight (r:
the working point's recall on the validation split), so the *effective* speed-up is
the speed-up divided by it; the cut has factor 1 but loses the fraction 1 - r.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import torch

from shipfastsim.components import ChunkContext
from shipfastsim.config import make_stage
from shipfastsim.plugins.fast_shield import COMPONENT as SHIELD
from shipfastsim.registry import get_registry
from shipfastsim.runner import apply_stage, stage_seed

PLANE = "decay_vessel"


def chain(filter_params: dict | None, copies: int):
    stages = [make_stage("generator", "gan-target", {}), make_stage("augmenter", "phi-rotation", {"copies": copies})]
    if filter_params is not None:
        stages.append(make_stage("filter", "mlp-filter", filter_params))
    stages.append(make_stage("propagator", "fast-shield", {}, plane=PLANE))
    for index, stage in enumerate(stages):
        stage.index = index
    return stages


def variance_factor(params: dict | None) -> tuple[float, float]:
    """(validation recall r of the working point, variance factor r + (1 - r)/q or 1)."""
    from shipfastsim.plugins.mlp_filter import COMPONENT, working_threshold
    from shipfastsim.plugins.mlp_filter.model import read_sidecar

    if params is None:
        return 1.0, 1.0
    p = COMPONENT.defaults() | params
    sidecar = read_sidecar(p["weights"])
    scores = np.asarray(sidecar["validation_positive_scores"])
    r = float((scores >= working_threshold(sidecar, p["recall"], p["confidence"])).mean())
    return r, (1.0 if p["mode"] == "cut" else r + (1 - r) / p["keep_probability"])


def run(stages, events: int, chunk: int, seed: int, aperture: tuple[float, float]) -> dict:
    registry = get_registry()
    seconds: dict[str, float] = defaultdict(float)
    weights = []
    for k, first in enumerate(range(0, events, chunk)):
        n = min(chunk, events - first)
        batch = None
        for stage in stages:
            # Stage seeds as the runner's, by the stage's position without the filter, so that
            # every chain sees the same generated and rotated muons.
            position = stage.index if stage.kind != "propagator" else 3
            generator = torch.Generator().manual_seed(stage_seed(seed, k, position))
            start = time.process_time()
            batch = apply_stage(registry, stage, batch, n, ChunkContext(k, first, generator, torch.device("cpu")))
            seconds[stage.component] += time.process_time() - start
        inside = (batch.x.abs() <= aperture[0]) & (batch.y.abs() <= aperture[1])
        weights.append(batch.weight[inside].numpy())
    w = np.concatenate(weights)
    total = sum(seconds.values())
    return {"seconds": dict(seconds), "total": total, "p1": len(w), "p1_weight": float(w.sum()),
            "p1_per_s": len(w) / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="generated (GAN) muons")
    parser.add_argument("--copies", type=int, default=10, help="phi copies per generated muon")
    parser.add_argument("--chunk", type=int, default=10000, help="generated muons per chunk")
    parser.add_argument("--keep-probability", type=float, default=0.01, help="q of the unbiased mode")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from shipfastsim.geometry import load_geometry

    plane = load_geometry(SHIELD.defaults()["geometry"]).plane(PLANE)
    aperture = (plane.aperture_half_x, plane.aperture_half_y)
    q = args.keep_probability
    chains = {"no filter": None, "cut": {"mode": "cut"}, "unbiased": {"keep_probability": q},
              "unb. r=0.9": {"keep_probability": 0.1, "recall": 0.9, "confidence": 0.0}}
    results = {}
    for name, params in chains.items():
        stages = chain(params, args.copies)
        run(stages, min(1000, args.chunk), args.chunk, args.seed + 1, aperture)  # warm-up: load models, tables
        results[name] = run(stages, args.events, args.chunk, args.seed, aperture)
        results[name]["recall"], results[name]["variance"] = variance_factor(params)
    print(f"{args.events:,} generated muons x {args.copies} phi copies, {args.threads} thread(s), CPU seconds; "
          f"P1 = inside the {PLANE} aperture (|x| <= {aperture[0]}, |y| <= {aperture[1]} cm)")
    header = (f"{'chain':<11} {'gan s':>7} {'phi s':>7} {'filter s':>8} {'shield s':>8} {'total s':>8} {'P1':>6} "
              f"{'P1 weight':>10} {'P1/s':>8} {'speed-up':>9} {'val. recall':>11} {'var. factor':>11} "
              f"{'eff. speed-up':>13}")
    print(header + "\n" + "-" * len(header))
    base = results["no filter"]
    for name, r in results.items():
        s, speed_up = r["seconds"], r["p1_per_s"] / base["p1_per_s"]
        print(f"{name:<11} {s['gan-target']:>7.2f} {s['phi-rotation']:>7.2f} {s.get('mlp-filter', 0.0):>8.2f} "
              f"{s['fast-shield']:>8.2f} {r['total']:>8.2f} {r['p1']:>6} {r['p1_weight']:>10.1f} "
              f"{r['p1_per_s']:>8.2f} {speed_up:>9.2f} {r['recall']:>11.4f} {r['variance']:>11.2f} "
              f"{speed_up / r['variance']:>13.2f}")


if __name__ == "__main__":
    main()
