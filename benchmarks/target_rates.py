"""After-transport rates of the target generators against their truth sample (fast-shield).

Run:  nice python benchmarks/target_rates.py [--sources 500000] [--copies 2] [--truth-copies 20]
          [--output rates.json]

Each target generator (flow-target, gan-target, bundled weights) gives ``--sources``
muons x ``--copies`` phi rotations; the truth is every muon of the shipped 50k SHiP
sample (which both were trained on) x ``--truth-copies``.  All go through the same
fast-shield chain (`shipfastsim.plugins.gan_target.transport_rates`); printed per
label (shield_end, P1, P2): the rate per generated muon with its per-source-muon
standard error, and each generator's ratio to the truth with its error and pull.
The truth's 50k source muons bound the precision of every ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from shipfastsim.adapters.fairship import count_muons
from shipfastsim.data import SHIP_SAMPLE
from shipfastsim.plugins.gan_target.transport_rates import TransportedRate, rate_ratio, transported_rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=500_000, help="muons of each generator")
    parser.add_argument("--copies", type=int, default=2, help="phi-rotated copies of each generator muon")
    parser.add_argument("--truth-copies", type=int, default=20, help="phi-rotated copies of each truth muon")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, help="write the figures as JSON")
    args = parser.parse_args()

    sides = {"truth (shipped 50k sample)": ("fairship-file", {"files": [str(SHIP_SAMPLE)]},
                                             count_muons(SHIP_SAMPLE), args.truth_copies),
             "flow-target": ("flow-target", {}, args.sources, args.copies),
             "gan-target": ("gan-target", {}, args.sources, args.copies)}
    results = {}
    for name, (generator, params, sources, copies) in sides.items():
        start = time.perf_counter()
        rates = transported_rates(generator, params, sources, copies, args.seed, progress=True)
        seconds = time.perf_counter() - start
        results[name] = {"generator": generator, "sources": sources, "copies": copies, "seconds": seconds,
                         "rates": {label: rate.to_dict() for label, rate in rates.items()}}
        print(f"{name}: {sources} x {copies} in {seconds:.0f} s")
        for rate in rates.values():
            print(f"  {rate.label:10s} {rate.rate:.4e} +- {rate.error:.2e} ({rate.hits} rows, "
                  f"{rate.sources_with_hits} source muons)")
    truth = results["truth (shipped 50k sample)"]["rates"]
    print("\n| generator | label | rate / truth rate | pull [sigma] |\n|---|---|---|---|")
    for name in ("flow-target", "gan-target"):
        results[name]["ratio_to_truth"] = {}
        for label, rate in results[name]["rates"].items():
            ratio = rate_ratio(TransportedRate(**rate), TransportedRate(**truth[label]))
            results[name]["ratio_to_truth"][label] = ratio
            print(f"| {name} | {label} | {ratio['ratio']:.3f} +- {ratio['ratio_error']:.3f} | {ratio['pull']:+.2f} |")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
