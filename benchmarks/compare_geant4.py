"""The project's transports against Geant4 (geant4-shield) on the same target muons, through a full shield.

Usage:
    python benchmarks/compare_geant4.py [--muons 50000] [--copies 20] [--workers 2]
        [--transports geant4 fast reference ...] [--cache DIR] [--json PATH]
        [--geometry configs/geometry/ship_try2025.yaml]

The shield is the default geometry (TRY_2026) unless ``--geometry`` names another; the
cache keeps each geometry's results apart.

Input: the SHiP GAN sample (`shipfastsim.data.SHIP_SAMPLE`, 50,000 muons, the padding
row dropped), each muon rotated about the beam ``--copies`` times by uniform angles
(10^6 transported at the defaults).  Each transport runs in chunks of 10,000 muons on
``--workers`` processes (one thread each, one Geant4 per process); its per-muon
results (reached shield end, in the decay-vessel aperture, state at the shield end)
are cached in ``--cache`` so that a candidate can be added without re-running Geant4.

Transports (``--transports``): ``geant4`` (geant4-shield's defaults: 10 cm cut, msc
lateral displacement on), ``geant4-1cm`` (1 cm cut), ``geant4-nolat`` (Geant4's own
default: no lateral displacement for muons), ``fast`` (fast-shield, shipped tables),
``fast:PATH`` (fast-shield with the tables PATH), ``fast@NAME=VALUE`` (fast-shield with
one numeric parameter changed, e.g. ``fast@long_step=20``), ``reference`` (reference-shield).

Against ``geant4`` it prints, per candidate: the shield-end survival per charge and
momentum bin and the decay-vessel aperture (P1) count per charge, each with the
pull (difference / its error from per-source-muon paired differences, which counts
the correlation of the copies of one muon); per-feature W1/sigma at the shield end
(sigma: Geant4's standard deviation), the standard deviations of y and py, and the
boosted-trees two-sample AUC on up to 10^5 shield-end muons a side.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch

P_BINS = (0.0, 30.0, 60.0, 100.0, 400.0)
FEATURES = ("x", "y", "px", "py", "pz", "p", "tx", "ty")
CHUNK = 10_000
PLANES = ["shield_end", "decay_vessel"]


def target_muons(n_source: int, copies: int, seed: int = 21):
    """(source index, MuonBatch) of the SHiP sample's first ``n_source`` muons x ``copies``
    rotations, copy k of every muon before copy k + 1."""
    from shipfastsim.adapters.fairship import read_ntuple
    from shipfastsim.data import SHIP_SAMPLE
    from shipfastsim.plugins.phi_rotation import rotate_about_beam

    base = read_ntuple(SHIP_SAMPLE)[0]
    base = base.select(torch.nonzero((base.pdg_id.abs() == 13) & (base.p > 0)).squeeze(1))
    base = base.select(torch.arange(min(n_source, len(base))))
    source = torch.arange(len(base)).repeat(copies)
    batch = base.select(source)
    angles = torch.rand(len(batch), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return source.numpy(), rotate_about_beam(batch, angles * (2 * math.pi))


def _transport(label: str, geometry_path: str):
    """A callable (pos, mom, charge, seed) -> TransportResult for a transport label."""
    from shipfastsim.geometry import load_geometry

    geometry = load_geometry(geometry_path)
    if label.startswith("geant4"):
        from shipfastsim.plugins.geant4_shield.transport import Geant4Transport

        cut = 1.0 if label == "geant4-1cm" else 10.0
        # geant4-rr<ratio>: the muons' step function dRoverRange (Geant4's default 0.2)
        ratio = float(label.split("-rr", 1)[1]) if "-rr" in label else 0.2
        transport = Geant4Transport(geometry, cut_cm=cut, lateral_displacement=label != "geant4-nolat",
                                    muon_step_ratio=ratio)
        return lambda pos, mom, q, seed: transport.propagate(pos, mom, q, PLANES, seed)
    if label == "reference":
        from shipfastsim.plugins.reference.transport import ReferenceTransport

        transport = ReferenceTransport(geometry)
        return lambda pos, mom, q, seed: transport.propagate(pos, mom, q, PLANES, torch.Generator().manual_seed(seed))
    from shipfastsim.plugins.fast_shield import make_transport

    params = {"geometry": str(geometry_path)}
    if label.startswith("fast:"):
        params["tables"] = label.split(":", 1)[1]
    elif label.startswith("fast@"):
        name, value = label[len("fast@"):].split("=", 1)
        params[name] = float(value)
    transport = make_transport(params)
    return lambda pos, mom, q, seed: transport.propagate(pos, mom, q, PLANES, torch.Generator().manual_seed(seed))


_WORKER: dict = {}


def _init(label: str, geometry_path: str) -> None:
    import numba

    torch.set_num_threads(1)
    numba.set_num_threads(1)  # one process per core: the pool's workers are the parallelism
    _WORKER["run"] = _transport(label, geometry_path)


def _chunk(args):
    pos, mom, q, seed = args
    start = time.process_time()
    result = _WORKER["run"](torch.from_numpy(pos), torch.from_numpy(mom), torch.from_numpy(q), seed)
    state = result.state["shield_end"].numpy().astype(np.float32)
    return (result.reached["shield_end"].numpy(), result.in_aperture["decay_vessel"].numpy(), state,
            time.process_time() - start)


def run_transport(label: str, batch, workers: int, cache: Path, geometry_path: str) -> dict:
    """Per-muon results of one transport through ``geometry_path`` (cached by label and sample size
    in ``cache``, which the caller keeps per geometry)."""
    name = label.replace(":", "_").replace("/", "_")
    path = cache / f"{name}_{len(batch)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    pos = torch.stack([batch.x, batch.y, batch.z], 1).numpy()
    mom = torch.stack([batch.px, batch.py, batch.pz], 1).numpy()
    q = batch.charge.numpy()
    jobs = [(pos[i:i + CHUNK], mom[i:i + CHUNK], q[i:i + CHUNK], 1000 + i // CHUNK)
            for i in range(0, len(batch), CHUNK)]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_init, initargs=(label, geometry_path)) as pool:
        parts = pool.map(_chunk, jobs, chunksize=1)
    wall = time.perf_counter() - start
    out = {"reached": np.concatenate([p[0] for p in parts]), "aperture": np.concatenate([p[1] for p in parts]),
           "state": np.concatenate([p[2] for p in parts]), "cpu_seconds": np.array(sum(p[3] for p in parts)),
           "wall_seconds": np.array(wall)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def features(state: np.ndarray) -> np.ndarray:
    x, y, px, py, pz = (state[:, k].astype(np.float64) for k in (0, 1, 3, 4, 5))
    return np.stack([x, y, px, py, pz, np.sqrt(px**2 + py**2 + pz**2), px / pz, py / pz], 1)


def paired_pull(source: np.ndarray, a: np.ndarray, b: np.ndarray, select: np.ndarray) -> tuple[int, int, float]:
    """Counts of a and b among ``select`` and the pull of b - a, with the error from the
    per-source-muon differences (copies of one muon are correlated)."""
    n_source = int(source.max()) + 1
    da = np.bincount(source[select], weights=a[select].astype(float), minlength=n_source)
    db = np.bincount(source[select], weights=b[select].astype(float), minlength=n_source)
    error = math.sqrt(float(((db - da) ** 2).sum()))
    ka, kb = int(a[select].sum()), int(b[select].sum())
    return ka, kb, (kb - ka) / error if error > 0 else 0.0


def compare(source, batch, truth: dict, candidate: dict, max_rows: int = 100_000) -> dict:
    """Survival per charge and p bin, P1 per charge, W1/sigma, spreads and the AUC against ``truth``."""
    from shipfastsim.validation.metrics import wasserstein1
    from shipfastsim.validation.two_sample import gbt_auc

    p, q = batch.p.numpy(), batch.charge.numpy()
    out: dict = {"survival": [], "p1": []}
    for charge in (1, -1):
        for lo, hi in zip(P_BINS[:-1], P_BINS[1:], strict=True):
            sel = (q == charge) & (p >= lo) & (p < hi)
            ka, kb, pull = paired_pull(source, truth["reached"], candidate["reached"], sel)
            out["survival"].append({"charge": charge, "p": [lo, hi], "n": int(sel.sum()), "truth": ka / sel.sum(),
                                    "candidate": kb / sel.sum(), "pull": pull})
        ka, kb, pull = paired_pull(source, truth["aperture"], candidate["aperture"], q == charge)
        out["p1"].append({"charge": charge, "truth": ka, "candidate": kb, "pull": pull})
    ft = features(truth["state"][truth["reached"]])
    fc = features(candidate["state"][candidate["reached"]])
    out["w1_over_sigma"] = {name: wasserstein1(ft[:, j], fc[:, j]) / ft[:, j].std() for j, name in enumerate(FEATURES)}
    out["std"] = {name: [float(ft[:, j].std()), float(fc[:, j].std())] for j, name in enumerate(FEATURES)}
    rng = np.random.default_rng(5)
    take_t = rng.permutation(len(ft))[:max_rows]
    take_c = rng.permutation(len(fc))[:max_rows]
    out["auc"] = gbt_auc(ft[take_t], fc[take_c], seed=5)
    return out


def print_comparison(label: str, result: dict, timing: dict) -> None:
    print(f"\n=== {label} against geant4 ===")
    print(f"timing: {timing}")
    print("shield-end survival per charge and momentum bin (pull from per-source paired differences)")
    for row in result["survival"]:
        print(f"  {'mu+' if row['charge'] > 0 else 'mu-'} p {row['p'][0]:>5.0f}-{row['p'][1]:<5.0f} n {row['n']:>7} "
              f"geant4 {row['truth']:.4f}  {label} {row['candidate']:.4f}  pull {row['pull']:+.2f}")
    for row in result["p1"]:
        print(f"  P1 {'mu+' if row['charge'] > 0 else 'mu-'}: geant4 {row['truth']}  {label} {row['candidate']}  "
              f"pull {row['pull']:+.2f}")
    print("  W1/sigma: " + ", ".join(f"{k} {v:.4f}" for k, v in result["w1_over_sigma"].items()))
    print("  std (geant4 / candidate): " + ", ".join(f"{k} {a:.4g}/{b:.4g}" for k, (a, b) in result["std"].items()
                                                      if k in ("x", "y", "px", "py")))
    print(f"  boosted-trees AUC: {result['auc']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--muons", type=int, default=50_000, help="source muons of the SHiP sample")
    parser.add_argument("--copies", type=int, default=20, help="phi rotations per source muon")
    parser.add_argument("--workers", type=int, default=2, help="processes per transport")
    parser.add_argument("--transports", nargs="+", default=["geant4", "fast", "reference"])
    parser.add_argument("--cache", default="output/compare_geant4", help="per-muon results of each transport")
    parser.add_argument("--json", default=None, help="write the comparison here")
    parser.add_argument("--geometry", default=None,
                        help="shield geometry YAML (default: the default geometry, TRY_2026)")
    parser.add_argument("--truth", default="geant4", help="the transport the others are compared with "
                        "(geant4, geant4-rr0.002: finer muon steps, ...)")
    args = parser.parse_args()
    source, batch = target_muons(args.muons, args.copies)
    print(f"{len(batch)} muons ({args.muons} source muons x {args.copies} copies)")
    from shipfastsim.configs import DEFAULT_GEOMETRY

    geometry = Path(args.geometry or DEFAULT_GEOMETRY)
    print(f"shield: {geometry.name}")
    cache = Path(args.cache) / geometry.stem
    results = {label: run_transport(label, batch, args.workers, cache, str(geometry))
               for label in [args.truth, *args.transports]}
    report = {}
    for label, result in results.items():
        timing = {"cpu_seconds": float(result["cpu_seconds"]), "wall_seconds": float(result["wall_seconds"]),
                  "muons_per_cpu_second": len(batch) / float(result["cpu_seconds"])}
        print(f"{label}: shield end {result['reached'].mean():.5f}, P1 {int(result['aperture'].sum())}, "
              f"{timing['muons_per_cpu_second']:.0f} muons per CPU-second")
        if label != args.truth:
            report[label] = compare(source, batch, results[args.truth], result) | {"timing": timing}
            print_comparison(label, report[label], timing)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
