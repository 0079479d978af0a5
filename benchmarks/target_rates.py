"""After-transport rates of the target generators against their truth sample (fast-shield).

Run:  nice python benchmarks/target_rates.py --output DIR [--sources 250000] [--copies 2]
          [--truth-copies 10] [--sides truth flow-target gan-target] [--weights SIDE=PATH ...]
          [--geometry configs/geometry/ship_try2025.yaml]

Each target generator (flow-target, gan-target, bundled weights) gives ``--sources``
muons x ``--copies`` phi rotations (``--weights flow-target=PATH``: other weights than the
bundled ones); the truth is every muon of the shipped 50k SHiP
sample (which both were trained on) x ``--truth-copies``.  All go through the same
fast-shield chain (`shipfastsim.plugins.gan_target.transport_rates`; the default geometry,
TRY_2026, unless ``--geometry`` names another); each side's
rates (shield_end, P1, P2 per generated muon, with per-source-muon standard errors) go
to ``DIR/SIDE.json`` as soon as it is done, so sides can run in separate processes;
when the truth and a generator are both in DIR, the generator's ratio to the truth,
its error and pull are printed (and written to ``DIR/ratios.json``).  The truth's 50k
source muons bound the precision of every ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from shipfastsim.adapters.fairship import count_muons
from shipfastsim.configs import DEFAULT_GEOMETRY
from shipfastsim.data import SHIP_SAMPLE
from shipfastsim.plugins.gan_target.transport_rates import TransportedRate, rate_ratio, transported_rates

GENERATORS = ("flow-target", "gan-target")


def run_side(side: str, args: argparse.Namespace) -> dict:
    if side == "truth":
        generator, params, sources, copies = ("fairship-file", {"files": [str(SHIP_SAMPLE)]},
                                               count_muons(SHIP_SAMPLE), args.truth_copies)
    else:
        weights = dict(item.split("=", 1) for item in args.weights)
        params = {"weights": weights[side]} if side in weights else {}
        generator, sources, copies = side, args.sources, args.copies
    start = time.perf_counter()
    # About 10^4 rows per transport call: far larger calls run several times slower (cache).
    rates = transported_rates(generator, params, sources, copies, args.seed, max(1, 10_000 // copies),
                              shield_params={"geometry": str(args.geometry)}, progress=True)
    seconds = time.perf_counter() - start
    print(f"{side}: {sources} x {copies} in {seconds:.0f} s")
    for rate in rates.values():
        print(f"  {rate.label:10s} {rate.rate:.4e} +- {rate.error:.2e} ({rate.hits} rows, "
              f"{rate.sources_with_hits} source muons)")
    return {"generator": generator, "geometry": args.geometry.name, "sources": sources, "copies": copies,
            "seed": args.seed, "seconds": seconds,
            "rates": {label: rate.to_dict() for label, rate in rates.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="directory of the per-side JSON files")
    parser.add_argument("--sides", nargs="*", default=["truth", *GENERATORS], choices=["truth", *GENERATORS])
    parser.add_argument("--sources", type=int, default=250_000, help="muons of each generator")
    parser.add_argument("--copies", type=int, default=2, help="phi-rotated copies of each generator muon")
    parser.add_argument("--truth-copies", type=int, default=10, help="phi-rotated copies of each truth muon")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--geometry", type=Path, default=DEFAULT_GEOMETRY,
                        help="shield geometry YAML of the transport (default: the default geometry, TRY_2026)")
    parser.add_argument("--weights", nargs="*", default=[], metavar="SIDE=PATH",
                        help="a generator's weights instead of its bundled ones, e.g. "
                             "flow-target=DIR/flow_target.safetensors")
    args = parser.parse_args()
    import torch

    # One thread: two torch threads spin against each other on a busy machine (README, 20x slower).
    torch.set_num_threads(1)
    args.output.mkdir(parents=True, exist_ok=True)
    for side in args.sides:
        (args.output / f"{side}.json").write_text(json.dumps(run_side(side, args), indent=1) + "\n")
    if not (args.output / "truth.json").is_file():
        return
    truth_side = json.loads((args.output / "truth.json").read_text())
    truth = truth_side["rates"]
    ratios = {}
    print("\n| generator | label | rate / truth rate | pull [sigma] |\n|---|---|---|---|")
    for name in GENERATORS:
        if not (args.output / f"{name}.json").is_file():
            continue
        side = json.loads((args.output / f"{name}.json").read_text())
        if side.get("geometry") != truth_side.get("geometry"):
            print(f"{name}: transported through {side.get('geometry')}, the truth through "
                  f"{truth_side.get('geometry')}: no ratio")
            continue
        rates = side["rates"]
        ratios[name] = {label: rate_ratio(TransportedRate(**rate), TransportedRate(**truth[label]))
                        for label, rate in rates.items()}
        for label, ratio in ratios[name].items():
            print(f"| {name} | {label} | {ratio['ratio']:.3f} +- {ratio['ratio_error']:.3f} | {ratio['pull']:+.2f} |")
    (args.output / "ratios.json").write_text(json.dumps(ratios, indent=1) + "\n")


if __name__ == "__main__":
    main()
