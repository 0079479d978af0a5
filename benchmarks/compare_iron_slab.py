"""Energy-loss tail of fast-shield against the reference: muons through 10 m of iron.

Usage: python benchmarks/compare_iron_slab.py [--muons N] [--momenta P ...] [--tables NPZ ...]

A pencil beam of N muons at each momentum [GeV/c] crosses the 10 m iron magnet of the
uniform test geometry (no field) with the reference transport and with fast-shield
on each step-table file (default: the shipped tables).  Prints the mean loss [GeV],
the fractions losing more than 30 / 60 / 90 % of p0 and the fraction stopped, with
binomial errors: the radiative tail the tables must carry (the shield's high-momentum
survival depends on it) and the last 1e-4 of each step's loss distribution, where
the tables rest on their top quantile node.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from shipfastsim.geometry import geometry_from_dict
from shipfastsim.plugins.fast_shield import DEFAULT_TABLES
from shipfastsim.plugins.fast_shield.stepper import FastTransport
from shipfastsim.plugins.fast_shield.tables import load_tables
from shipfastsim.plugins.reference.transport import ReferenceTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "plugins" / "fast_shield"))
from conftest import uniform_field_geometry  # noqa: E402  (the test geometry, one definition)


def summary(result, p0: float) -> str:
    state, reached = result.state["end"], result.reached["end"]
    loss = p0 - state[reached, 3:].norm(dim=1)
    n = len(reached)

    def frac(k: int) -> str:
        f = k / n
        return f"{f:.5f}+-{math.sqrt(f * (1 - f) / n):.5f}"

    parts = [f"mean loss {loss.mean():7.3f}"]
    parts += [f"P(>{c:.0%}) {frac(int((loss > c * p0).sum()))}" for c in (0.3, 0.6, 0.9)]
    return "  ".join(parts + [f"stopped {frac(int((~reached).sum()))}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--muons", type=int, default=50_000)
    parser.add_argument("--momenta", type=float, nargs="+", default=[20.0, 50.0, 100.0, 300.0])
    parser.add_argument("--tables", type=Path, nargs="+", default=[DEFAULT_TABLES])
    args = parser.parse_args()
    geometry = geometry_from_dict(uniform_field_geometry("iron", 0.0))
    n = args.muons
    pos = torch.zeros(n, 3, dtype=torch.float64)
    pos[:, 2] = 50.0
    charge = torch.ones(n, dtype=torch.float64)
    fast = {path.name: FastTransport(geometry, load_tables(path)) for path in args.tables}
    for p0 in args.momenta:
        mom = torch.zeros(n, 3, dtype=torch.float64)
        mom[:, 2] = p0
        print(f"p0 = {p0:g} GeV/c, {n} muons, 10 m of iron")
        ref = ReferenceTransport(geometry).propagate(pos, mom, charge, ["end"], torch.Generator().manual_seed(1))
        print(f"  {'reference':34s} {summary(ref, p0)}", flush=True)
        for name, transport in fast.items():
            out = transport.propagate(pos, mom, charge, ["end"], torch.Generator().manual_seed(2))
            print(f"  {name:34s} {summary(out, p0)}", flush=True)


if __name__ == "__main__":
    main()
