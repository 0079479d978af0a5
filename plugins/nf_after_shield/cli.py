"""``shipfastsim train nf-after-shield --output DIR``: the one-command recipe of the bundled flow.

Makes the training data (`data.make_training_data`: ``--target-muons`` flow-target
muons x 10 phi rotations through fast-shield, the default production chain, data seed
12; or reads it back from ``--input DATA.npz`` written by an earlier run), trains the
structured flow (`train`), validates it on the holdout (`validate`, with the floor: the
same metrics between the holdout and training rows) and writes ``nf_after_shield.safetensors`` with its JSON
(training config, data recipe and counts, fidelity and enrichment tables) to DIR,
plus ``training_data.npz``.  With ``--peer`` it also trains zuko's RealNVP on the
same data and prints its tables beside ours.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

__all__ = ["DEFAULT_TARGET_MUONS", "HOLDOUT_SHIELD_END", "train_nf_after_shield", "validation_report"]

#: flow-target muons (each transported in 10 phi-rotated copies) of the bundled model's data.
DEFAULT_TARGET_MUONS = 1_500_000
#: Held-out rows of the trained model's split (`data.save_holdout`), written beside its weights.
HOLDOUT_SHIELD_END = "holdout_shield_end.npz"


def validation_report(flow, data, n_generate: int | None = None, seed: int = 0, plot=None,
                      sigmas: tuple[float, float, float] | None = None, max_rows: int = 400_000,
                      geometry: str | Path | None = None) -> dict:
    """Fidelity rows (per subset: inclusive and sigma_k candidates, and the floor) and the enrichment
    table; ``n_generate`` muons per sigma (default: 4 per holdout row, at most 2 M, so that the
    inclusive model's P1 outnumbers the holdout's); at most ``max_rows`` random rows a side enter
    a fidelity row (P0: the boosted trees' time); ``plot``: a PNG path; ``geometry``: the YAML whose
    decay vessel labels the generated muons (default: the default geometry, the bundled model's)."""
    import numpy as np

    from shipfastsim.geometry import load_geometry
    from shipfastsim.geometry.decay_vessel import DecayVessel
    from shipfastsim.plugins.nf_after_shield import DEFAULT_GEOMETRY
    from shipfastsim.plugins.nf_after_shield.data import split_indices
    from shipfastsim.plugins.nf_after_shield.validate import enrichment_table, fidelity, generate, plot_subsets

    vessel = DecayVessel.from_geometry(load_geometry(geometry or DEFAULT_GEOMETRY))
    split = split_indices(data.groups())
    holdout, train = split["holdout"], split["train"]
    truth, truth_label = data.state[holdout], data.label[holdout]
    n_generate = n_generate or min(2_000_000, 4 * len(holdout))
    sigmas = tuple(sigmas or flow.config.sigmas)
    samples = {s: generate(flow, n_generate, s, vessel, seed=seed + i) for i, s in enumerate(dict.fromkeys(sigmas))}
    if plot is not None:
        plot_subsets(truth, truth_label, samples, sigmas, plot)
    rng = np.random.default_rng(seed)
    rows = []
    for k, name in enumerate(("P0", "P1", "P2")):
        t = truth[truth_label >= k]
        t = t[rng.permutation(len(t))[:max_rows]]
        if len(t) < 10:
            continue
        inclusive = samples[1.0]
        candidate = inclusive.state[inclusive.label >= k][:max_rows]
        rows.append(fidelity(t, candidate, None, name, "sigma 1 (inclusive)", seed))
        # the statistical floor: training rows of the subset (same distribution, other target
        # muons), as many as the inclusive candidate
        reference = data.state[train[data.label[train] >= k]]
        rows.append(fidelity(t, reference[rng.permutation(len(reference))[:len(candidate)]], None, name,
                             "training truth (floor)", seed))
        if sigmas[k] != 1.0:
            s = samples[sigmas[k]]
            member = np.flatnonzero(s.label >= k)[:max_rows]
            rows.append(fidelity(t, s.state[member], s.weight[member], name, f"sigma {sigmas[k]:g} weighted", seed))
    return {"fidelity": [asdict(r) for r in rows], "enrichment": enrichment_table(samples),
            "holdout_rows_P0_P1_P2": [int((truth_label >= k).sum()) for k in range(3)], "generated": n_generate}


def _print_report(title: str, report: dict) -> None:
    from shipfastsim.plugins.nf_after_shield.validate import FidelityRow, format_fidelity

    print(f"{title}: fidelity on the holdout (W1/sigma per feature, GBT two-sample AUC)")
    print(format_fidelity([FidelityRow(**r) for r in report["fidelity"]]))
    print(f"{'sigma':>6} {'subset':<7}{'fraction':>10}{'inclusive':>11}{'weighted':>10}{'enrichment':>11}"
          f"{'ESS/muon':>10}")
    for r in report["enrichment"]:
        print(f"{r['sigma']:>6g} {r['subset']:<7}{r['fraction']:>10.4g}{r['inclusive_fraction']:>11.4g}"
              f"{r['weighted_fraction']:>10.4g}{r['enrichment']:>11.2f}{r['ess_per_muon']:>10.3f}")


def train_nf_after_shield(args: argparse.Namespace) -> int:
    """Make or read the data, train, validate, write (see module docstring)."""
    from shipfastsim.plugins.nf_after_shield.data import load_training_data, make_training_data, save_holdout
    from shipfastsim.plugins.nf_after_shield.train import TrainConfig, train_flow, write_model

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    if args.input:
        data = load_training_data(args.input[0])
    else:
        n_target = getattr(args, "target_muons", None) or DEFAULT_TARGET_MUONS
        data = make_training_data(n_target, progress=not args.quiet)  # data seed fixed (12), --seed trains
        data.save(output / "training_data.npz")
    defaults = TrainConfig()
    overrides = {k: v for k, v in (("steps", args.max_steps), ("eval_every", args.eval_every),
                                   ("max_minutes", args.max_minutes), ("batch_size", args.batch_size),
                                   ("patience", getattr(args, "patience", None)))
                 if v is not None}
    flow_overrides = {k: getattr(args, k) for k in ("hidden", "layers", "knots")
                      if getattr(args, k, None) is not None}
    config = TrainConfig(seed=args.seed, flow=type(defaults.flow)(**asdict(defaults.flow) | flow_overrides),
                         **overrides)
    result = train_flow(data, config, progress=not args.quiet)
    from shipfastsim.plugins.nf_after_shield import DANGEROUS_SIGMAS

    # sampled at the latent sigmas that enrich P1 and P2 (see the model module docstring)
    # the geometry the data was transported through labels the generated muons (``train chain --geometry``)
    geometry = getattr(args, "geometry", None)
    report = validation_report(result.flow, data, plot=output / "nf_after_shield_subsets.png",
                               sigmas=(1.0, *DANGEROUS_SIGMAS), geometry=geometry)
    path = write_model(result, data, config, output, {"validation": report, "dangerous_sigmas": DANGEROUS_SIGMAS})
    # The model's test sample beside its weights (held-out rows of its split), as the
    # nf-decay-vessel and mlp-filter trainers write theirs.
    save_holdout(data, output / HOLDOUT_SHIELD_END)
    _print_report("nf-after-shield", report)
    if getattr(args, "peer", False):
        peer = train_flow(data, config, progress=not args.quiet, peer=True)
        peer_report = validation_report(peer.flow, data, sigmas=(1.0, *DANGEROUS_SIGMAS), geometry=geometry)
        (output / "zuko_peer_report.json").write_text(json.dumps(peer_report, indent=1, default=float) + "\n")
        _print_report(f"zuko RealNVP peer ({peer.flow.parameter_count()} parameters)", peer_report)
    print(f"nf-after-shield: best validation loss {result.best_loss:.4f} at step {result.best_step}; "
          f"weights {path} (config beside it)")
    return 0
