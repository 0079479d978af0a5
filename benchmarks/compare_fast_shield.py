"""Offline agreement study: >= 10^5 phi-augmented target muons through the reference
and through ``fast-shield`` (the CI test uses a few thousand).

Usage: python benchmarks/compare_fast_shield.py [N] [--json PATH]   (default 100000 muons)

Prints, for the shield end and the decay-vessel aperture, the fraction of muons
passing per charge and momentum bin for both transports with binomial errors and
pulls, then W1/sigma and KS per feature of the state at the shield end and the
classifier two-sample AUC (`shipfastsim.validation.metrics`).  The reference runs in
chunks (its memory grows with the chunk) and takes about an hour on two cores.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import torch

from shipfastsim.plugins.fast_shield.compare import (
    distribution_metrics,
    fraction_table,
    run_fast,
    run_reference,
    state_features,
    target_sample,
)

PLANES = ["shield_end", "decay_vessel"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="reference muons per call")
    parser.add_argument("--json", default=None, help="write the numbers here")
    args = parser.parse_args()
    batch = target_sample(args.n, seed=21)
    start = time.perf_counter()
    reached, aperture, states = [], [], []
    for first in range(0, args.n, args.chunk):
        part = batch.select(torch.arange(first, min(first + args.chunk, args.n)))
        result = run_reference(part, PLANES, seed=22 + first)
        reached.append(result.reached["shield_end"])
        aperture.append(result.in_aperture["decay_vessel"])
        states.append(result.state["shield_end"])
        print(f"reference: {first + len(part)} muons, {time.perf_counter() - start:.0f} s", flush=True)
    t_ref = time.perf_counter() - start
    ref_reached, ref_aperture, ref_state = torch.cat(reached), torch.cat(aperture), torch.cat(states)
    start = time.perf_counter()
    fast = run_fast(batch, PLANES, seed=23)
    t_fast = time.perf_counter() - start
    out = {"n": args.n, "reference_seconds": t_ref, "fast_seconds": t_fast, "fractions": {}}
    for what, ref, cand in (("shield_end", ref_reached, fast.reached["shield_end"]),
                            ("decay_vessel_aperture", ref_aperture, fast.in_aperture["decay_vessel"])):
        rows = fraction_table(batch, ref, cand)
        out["fractions"][what] = [asdict(r) | {"pull": r.pull} for r in rows]
        print(f"{what}: reference {ref.float().mean():.5f}, fast {cand.float().mean():.5f}")
        for r in rows:
            print(f"  q={r.charge:+d} p=[{r.p_low:3.0f},{r.p_high:3.0f}) n={r.n:6d} ref {r.reference:.4f}"
                  f"+-{r.reference_err:.4f} fast {r.fast:.4f}+-{r.fast_err:.4f} pull {r.pull:+.2f}")
    a = state_features(ref_state[ref_reached])
    b = state_features(fast.state["shield_end"][fast.reached["shield_end"]])
    metrics = distribution_metrics(a, b)
    out["metrics"] = metrics
    print(f"shield_end distributions ({len(a)} reference, {len(b)} fast muons):")
    for name, m in metrics["features"].items():
        print(f"  {name:3s} W1/sigma {m['w1_over_sigma']:.4f}  KS {m['ks']:.4f}")
    print(f"  classifier two-sample AUC {metrics['auc']:.4f}")
    print(f"time: reference {t_ref:.0f} s, fast {t_fast:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
