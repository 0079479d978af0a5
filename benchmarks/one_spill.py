"""One spill after the shield, the seed's benchmark: the muons of one spill at ``shield_end``.

Run:  python benchmarks/one_spill.py [--scale 0.1] [--paths nf transport mlp-filter] [--executors serial dask]

The seed's figure is the time to make the muons of one SPS spill at the end of the
shield (4.5 M events behind TRY_2025; ~0.58 s for the normalising flow on one L40S GPU).
Every path runs on the default geometry (TRY_2026) and the bundled models, whose spill is
that of ``configs/after_shield_nf.yaml`` (``muons_per_pot`` x 4e13 POT: 4.2 M muons at the
TRY_2026 shield end).  Each production path that is registered here makes ``scale`` of
that spill:

* ``nf``: ``nf-after-shield`` draws the muons at the shield end directly;
* ``nf-p1``: the same with its decay-vessel muons from ``nf-decay-vessel``
  (``p1_source``, as ``configs/after_shield_nf.yaml``);
* ``nf-dangerous``: that composite model's dangerous mode (``p1_share`` 1, as
  ``configs/after_shield_dangerous.yaml``): decay-vessel muons only, each of weight p_1,
  ``scale`` x 4.5 M of them standing for ``scale`` x one spill of shield-end muons;
* ``nf-nested``: the composite model through its nested latent at sigma_1 = 0.2 (as
  ``configs/after_shield_latent_sigma.yaml`` before its P1 filter): 28 % decay-vessel
  muons (TRY_2026 models), every muon with its exact weight;
* ``transport``: ``flow-target`` -> ``phi-rotation`` (x10) -> ``fast-shield`` to the shield
  end (``configs/default.yaml``'s chain);
* ``mlp-filter``: the same with ``mlp-filter`` (unbiased roulette) before
  ``fast-shield``, which then carries the kept muons to the decay-vessel entrance.

each serially and on a 2-worker dask LocalCluster, as ``shipfastsim run`` in a fresh
process (wall time and peak RSS from the operating system, ``wait4``).  For every run:
muons at the shield end per second (for ``mlp-filter``: the shield-end muons its
generated muons stand for, from the transport pilot's survival), the muons entering
the decay-vessel aperture (P1 of `shipfastsim.geometry.decay_vessel`, straight tracks
from the recorded state) per second of run time, and their weighted count per spill
(the spill's shield-end muons x the weighted fraction of them in P1).  The Geant4 chain
(``geant4-shield`` instead of ``fast-shield``, the full simulation's transport) and
the reference chain (``reference-shield``) are timed on measured samples in the same
invocation and extrapolated to one spill; the speed-up is the Geant4 chain's one-spill
time over each path's (the reference chain's row shows its own).  The P1 speed-up
is the same for the decay-vessel muons: its one-spill time over the time a path takes
to write as many P1 muons as one spill holds (its weighted count per spill over its P1
muons per second), the figure that tells the dangerous mode apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml
from bench_memory import measure

PROTONS_PER_SPILL = 4.0e13
#: Muons at the default geometry's shield end per spill: configs/after_shield_nf.yaml's
#: normalisation (the seed benchmark's 4.5 M behind TRY_2025, scaled to TRY_2026).
_NORMALISATION = Path(__file__).resolve().parents[1] / "configs" / "after_shield_nf.yaml"
MUONS_PER_POT = yaml.safe_load(_NORMALISATION.read_text())["stages"][0]["params"]["muons_per_pot"]
SPILL = round(MUONS_PER_POT * PROTONS_PER_SPILL)
COPIES = 10


@dataclass(frozen=True)
class Chain:
    """A production path: its stages, and whether its output is the shield-end muons."""

    name: str
    stages: list[dict]
    at_shield_end: bool = True  # its output is the shield-end muons (else: the decay-vessel entrance)
    p1_only: bool = False  # its output is P1 muons only, weighted for the shield-end muons it stands for


def _target_chain(*middle: dict, plane: str = "shield_end", propagator: str = "fast-shield") -> list[dict]:
    """configs/default.yaml's chain (flow-target, whose muons the bundled filter learnt)."""
    return [{"generator": "flow-target"}, {"augmenter": "phi-rotation", "params": {"copies": COPIES}}, *middle,
            {"propagator": propagator, "plane": plane}]


PATHS = {
    "nf": Chain("nf", [{"generator": "nf-after-shield", "params": {"muons_per_pot": MUONS_PER_POT}}]),
    "nf-p1": Chain("nf-p1", [{"generator": "nf-after-shield",
                              "params": {"muons_per_pot": MUONS_PER_POT, "p1_source": "nf-decay-vessel"}}]),
    "nf-dangerous": Chain("nf-dangerous", [{"generator": "nf-after-shield",
                                            "params": {"muons_per_pot": MUONS_PER_POT,
                                                       "p1_source": "nf-decay-vessel", "p1_share": 1.0}}],
                          p1_only=True),
    "nf-nested": Chain("nf-nested", [{"generator": "nf-after-shield",
                                      "params": {"muons_per_pot": MUONS_PER_POT,
                                                 "p1_source": "nf-decay-vessel", "latent_sigma": 0.2}}]),
    "transport": Chain("transport", _target_chain()),
    "mlp-filter": Chain("mlp-filter", _target_chain({"filter": "mlp-filter", "params": {"mode": "unbiased"}},
                                                 plane="decay_vessel"), at_shield_end=False),
}
REFERENCE = Chain("reference", _target_chain(propagator="reference-shield"))
GEANT4 = Chain("geant4", _target_chain(propagator="geant4-shield"))


def missing_components(path: Chain) -> list[str]:
    """The components of ``path`` that no plugin declares here (empty: it can run)."""
    from shipfastsim.components import STAGE_KINDS
    from shipfastsim.registry import get_registry

    registry = get_registry()
    missing = []
    for stage in path.stages:
        kind = next(k for k in STAGE_KINDS if k in stage)
        if registry.get(kind, stage[kind]) is None:
            missing.append(f"{kind} {stage[kind]}")
    return missing


def write_config(directory: Path, path: Chain, events: int, chunk_size: int, seed: int) -> Path:
    document = {"version": 1,
                "run": {"events": events, "chunk_size": chunk_size, "seed": seed,
                        "output": {"path": str(directory / f"{path.name}.root")}},
                "stages": path.stages}
    config = directory / f"{path.name}.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return config


@dataclass
class Run:
    path: str
    executor: str
    events: int
    rows_out: int
    wall: float  # run time (the summary's wall: driver start to last file)
    process_wall: float  # the whole process, interpreter start-up included
    peak_mib: float
    weight_out: float
    p1_rows: int
    p1_weight: float
    p1_weight_squared: float
    stage_seconds: dict


def count_p1(files: list[dict]) -> tuple[int, float, float]:
    """Rows in P1 (crossing the decay-vessel entrance inside its aperture), their weight
    and the sum of their squared weights (the variance of the weighted count)."""
    import torch

    from shipfastsim.adapters.fairship import iter_ntuple
    from shipfastsim.configs import DEFAULT_GEOMETRY
    from shipfastsim.geometry import load_geometry
    from shipfastsim.geometry.decay_vessel import DecayVessel

    vessel = DecayVessel.from_geometry(load_geometry(DEFAULT_GEOMETRY))
    rows, weight, squared = 0, 0.0, 0.0
    for entry in files:
        for batch in iter_ntuple(entry["path"], 1_000_000):
            p1 = vessel.labels(batch.x, batch.y, batch.z, batch.px, batch.py, batch.pz) >= 1
            w = torch.where(p1, batch.weight, 0.0)
            rows, weight, squared = rows + int(p1.sum()), weight + float(w.sum()), squared + float((w * w).sum())
    return rows, weight, squared


def run_once(directory: Path, path: Chain, events: int, chunk_size: int, executor: str, workers: int,
             seed: int, threads: int = 1) -> Run:
    from shipfastsim.config import OutputConfig
    from shipfastsim.summary import summary_path

    config = write_config(directory, path, events, chunk_size, seed)
    command = [sys.executable, "-W", "ignore", "-m", "shipfastsim", "run", str(config), "--no-progress", "--overwrite"]
    if executor == "dask":
        command += ["--workers", str(workers)]  # one-thread workers (dask sets their OMP_NUM_THREADS)
    # Serial: one torch thread by default; two threads of one process spin against each
    # other on a busy machine (see configs/default.yaml).
    process_wall, peak = measure(command, os.environ | {"OMP_NUM_THREADS": str(threads)})
    summary = json.loads(summary_path(OutputConfig(path=directory / f"{path.name}.root")).read_text())
    p1 = count_p1(summary["files"])
    stage_seconds = {f"{s['kind']} {s['component']}": s["seconds"] for s in summary["stages"]}
    return Run(path.name, executor, events, summary["muons_out"], summary["wall_seconds"], process_wall, peak,
               summary["weight_out"], *p1, stage_seconds)


def chunking(events: int, most: int) -> int:
    """A chunk size giving at least 8 chunks (work for 2 workers), at most ``most``."""
    return max(1, min(most, math.ceil(events / 8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of one spill to make (default 0.1)")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--executors", nargs="+", default=["serial", "dask"], choices=["serial", "dask"])
    parser.add_argument("--workers", type=int, default=2, help="dask LocalCluster workers (default 2)")
    parser.add_argument("--reference-events", type=int, default=300,
                        help=f"generated muons ({COPIES} phi copies each) timed through the reference chain")
    parser.add_argument("--geant4-events", type=int, default=1000,
                        help=f"generated muons ({COPIES} phi copies each) timed through the Geant4 chain")
    parser.add_argument("--pilot-events", type=int, default=1000,
                        help="generated muons of the transport pilot that measures the shield survival")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the serial transport runs (default 1)")
    parser.add_argument("--nf-threads", type=int, default=2,
                        help="torch threads of the serial nf run (default 2: its generator shares 4096-muon blocks "
                             "over that many one-thread Python threads, which do not spin against each other)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="where the runs write (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    target_rows = SPILL * args.scale
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        directory = Path(tmp)
        # Survival of the flow-target chain (rows at the shield end per generated muon): sizes
        # the transport runs and gives the spill equivalent of the filtered path.
        pilot = run_once(directory, PATHS["transport"], args.pilot_events, args.pilot_events, "serial", 1, args.seed)
        rows_per_generated = pilot.rows_out / pilot.events
        shield_weight_per_generated = pilot.weight_out / pilot.events
        print(f"pilot: {pilot.events:,} flow-target muons x {COPIES} -> {pilot.rows_out:,} at the shield end "
              f"({rows_per_generated:.3f} per generated muon)", flush=True)
        reference = None
        if not missing_components(REFERENCE):
            reference = run_once(directory, REFERENCE, args.reference_events, args.reference_events, "serial", 1,
                                 args.seed)
            ref_rows_per_second = reference.rows_out / reference.wall
            print(f"reference: {reference.events * COPIES:,} muons through reference-shield in {reference.wall:.1f} s "
                  f"-> {reference.rows_out:,} at the shield end; one spill: {SPILL / ref_rows_per_second:,.0f} s",
                  flush=True)
        geant4 = None
        if not missing_components(GEANT4):
            geant4 = run_once(directory, GEANT4, args.geant4_events, args.geant4_events, "serial", 1, args.seed)
            print(f"geant4: {geant4.events * COPIES:,} muons through geant4-shield in {geant4.wall:.1f} s "
                  f"-> {geant4.rows_out:,} at the shield end; one spill: "
                  f"{SPILL * geant4.wall / geant4.rows_out:,.0f} s", flush=True)
        for name in args.paths:
            path = PATHS[name]
            missing = missing_components(path)
            if missing:
                print(f"{name}: skipped, not registered here: {', '.join(missing)}")
                continue
            if path.stages[0]["generator"] == "nf-after-shield":
                events, most = round(target_rows), 500_000
            else:
                events, most = round(target_rows / rows_per_generated), 50_000
            for executor in args.executors:
                threads = args.nf_threads if name.startswith("nf") else args.threads
                run = run_once(directory, path, events, chunking(events, most), executor, args.workers, args.seed,
                               threads)
                runs.append(run)
                print(f"{name} {executor}: {run.events:,} generated, {run.rows_out:,} out, {run.wall:.1f} s "
                      f"(process {run.process_wall:.1f} s), peak {run.peak_mib:.0f} MiB", flush=True)
    print_table(runs, reference, geant4, rows_per_generated, shield_weight_per_generated)
    if args.json:
        args.json.write_text(json.dumps({"scale": args.scale, "runs": [vars(r) for r in runs],
                                         "reference": vars(reference) if reference else None,
                                         "geant4": vars(geant4) if geant4 else None,
                                         "pilot": vars(pilot)}, indent=1))


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def print_table(runs: list[Run], reference: Run | None, geant4: Run | None, rows_per_generated: float,
                shield_weight_per_generated: float) -> None:
    """The table; speed-ups against the Geant4 chain (the reference chain's when Geant4 is not installed)."""
    truth = geant4 or reference
    ref_spill_seconds = SPILL * truth.wall / truth.rows_out if truth else None
    print()
    print("| path | executor | shield-end muons | wall [s] | muons/s | peak RSS [MiB] | P1 muons | P1 muons/s "
          f"| P1 per spill (weighted) | one spill [s] | speed-up vs {truth.path if truth else 'n/a'} "
          "| one spill's P1 [s] | P1 speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sample in (geant4, reference):
        if sample:
            spill = SPILL * sample.wall / sample.rows_out
            print(f"| {sample.path} (sample) | serial | {sample.rows_out:,} | {sample.wall:.1f} "
                  f"| {_number(sample.rows_out / sample.wall)} | {sample.peak_mib:.0f} | | | "
                  f"| {spill:,.0f} | {_number(ref_spill_seconds / spill)} | {spill:,.0f} | "
                  f"{_number(ref_spill_seconds / spill)} |")
    for run in runs:
        chain = PATHS[run.path]
        if chain.p1_only:  # its muons stand for as many shield-end muons, weighted per spill
            shield_rows, shield_weight = run.events, SPILL
        elif chain.at_shield_end:
            shield_rows, shield_weight = run.rows_out, run.weight_out
        else:  # the filtered path stands for the shield-end muons of its generated muons (pilot survival)
            shield_rows, shield_weight = run.events * rows_per_generated, run.events * shield_weight_per_generated
        per_spill, error = (SPILL * v / shield_weight for v in (run.p1_weight, math.sqrt(run.p1_weight_squared)))
        spill_seconds = run.wall * SPILL / shield_rows
        p1_spill_seconds = per_spill / (run.p1_rows / run.wall) if run.p1_rows else math.inf
        speedup, p1_speedup = ((_number(ref_spill_seconds / t) if ref_spill_seconds else "n/a")
                               for t in (spill_seconds, p1_spill_seconds))
        print(f"| {run.path} | {run.executor} | {shield_rows:,.0f} | {run.wall:.1f} "
              f"| {_number(shield_rows / run.wall)} | {run.peak_mib:.0f} | {run.p1_rows:,} "
              f"| {_number(run.p1_rows / run.wall)} "
              f"| {_number(per_spill)} +- {_number(error)} | {_number(spill_seconds)} | {speedup} "
              f"| {_number(p1_spill_seconds)} | {p1_speedup} |")


if __name__ == "__main__":
    main()
