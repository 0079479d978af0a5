"""The reference transport through the full TRY_2025 shield: muons/s and the survival
table, under one or several field models side by side.

Usage: python benchmarks/bench_reference.py [N] [THREADS] [--models MODEL[:POLARITY] ...] [--transport T]
[--json PATH] [--geometry YAML] (defaults 10000 muons, 2 threads, the geometry's own field model, the
reference transport, TRY_2025; ``--transport geant4`` runs geant4-shield instead, one thread).  MODEL is constant,
flux-conserving or map=FILE.root; POLARITY signed-B or direction-list.  The muons are
the shipped target sample, phi-augmented (`compare.target_sample`, seed 1); every model
gets the same muons and the same seed.  Prints the wall time, muons/s, steps, and per
model the fractions reaching the shield end and the decay-vessel aperture by charge
and initial momentum, with binomial errors.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path

import torch
import yaml

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import geometry_from_dict
from shipfastsim.plugins.fast_shield.compare import target_sample
from shipfastsim.plugins.reference.summary import DEFAULT_P_BINS, bin_labels, summary_from_counters, transport_counts
from shipfastsim.plugins.reference.transport import ReferenceTransport

GEOMETRY = GEOMETRY_DIR / "ship_try2025.yaml"


def geometry_with(model: str | None, path: Path = GEOMETRY):
    """The geometry at ``path`` (TRY_2025 by default) with the field model ``MODEL[:POLARITY]``
    (None: as shipped)."""
    data = yaml.safe_load(path.read_text())
    if model:
        name, _, polarity = model.partition(":")
        field = {"model": "map", "map": name[4:]} if name.startswith("map=") else {"model": name}
        data["shield"]["field"] = field | ({"polarity": polarity} if polarity else {})
    return geometry_from_dict(data, source=str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("threads", type=int, nargs="?", default=2)
    parser.add_argument("--models", nargs="*", default=[None])
    parser.add_argument("--chunk", type=int, default=10_000, help="muons per call (memory grows with it)")
    parser.add_argument("--json", default=None, help="write the tables here")
    parser.add_argument("--transport", choices=("reference", "geant4"), default="reference")
    parser.add_argument("--geometry", type=Path, default=GEOMETRY, help="geometry YAML (default TRY_2025)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = target_sample(args.n, seed=1)
    pos = torch.stack([batch.x, batch.y, batch.z], 1)
    mom = torch.stack([batch.px, batch.py, batch.pz], 1)
    tables = {}
    for model in args.models:
        t0 = time.perf_counter()
        if args.transport == "geant4":
            from shipfastsim.plugins.geant4_shield.transport import Geant4Transport

            transport = Geant4Transport(geometry_with(model, args.geometry))
        else:
            transport = ReferenceTransport(geometry_with(model, args.geometry))
        t1 = time.perf_counter()
        counts, steps = Counter(), 0
        for first in range(0, args.n, args.chunk):
            part = slice(first, min(first + args.chunk, args.n))
            seed = 1 + first if args.transport == "geant4" else torch.Generator().manual_seed(1 + first)
            result = transport.propagate(pos[part], mom[part], batch.charge[part],
                                         transport.geometry.plane_names(), seed)
            counts.update(transport_counts(batch.p[part], batch.charge[part], result))
            steps += result.steps
        t2 = time.perf_counter()
        fm = transport.geometry.field_model
        name = f"{fm.model}:{fm.polarity}"
        print(f"[{name}] set-up {t1 - t0:.2f} s; {len(batch)} muons in {t2 - t1:.1f} s = "
              f"{len(batch) / (t2 - t1):.0f} muons/s on {torch.get_num_threads()} threads, {steps} steps",
              flush=True)
        tables[name] = summary_from_counters(counts)
    whats = ["shield_end", "decay_vessel:aperture"]
    labels = bin_labels(DEFAULT_P_BINS) + ["all"]
    for i, m in enumerate(tables):
        print(f"model {i}: {m}")
    header = " ".join(f"{w.split(':')[-1][:8]} m{i}".rjust(17) for w in whats for i in range(len(tables)))
    print(f"{'charge':6} {'p [GeV]':10} {'n':>6} " + header)
    for charge in ("mu+", "mu-"):
        for label in labels:
            rows = [t.get(charge, {}).get(label) for t in tables.values()]
            if not rows[0]:
                continue
            n = int(rows[0]["generated"])
            cells = []
            for what in whats:
                for row in rows:
                    f = row.get(what, 0.0)
                    cells.append(f"{f:.4f}+-{math.sqrt(max(f * (1 - f), 1.0 / n) / n):.4f}")
            print(f"{charge:6} {label:10} {n:6d} " + " ".join(f"{c:>17}" for c in cells))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(tables, handle, indent=1)


if __name__ == "__main__":
    main()
