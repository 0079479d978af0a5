"""``shipfastsim validate``: the validation report of candidate muon files against reference files.

Example (the bundled GAN's production output against the holdout of the shared sample)::

    shipfastsim validate --reference ../shared/data/ship_gan_target_muons_50k.root \\
        --reference-split holdout --candidate ../output/target_gan.root --output ../output/report

With ``--transport-copies K`` both samples of target muons also go through fast-shield (the
default geometry unless ``--geometry`` names another), each muon in K rotations about the
beam axis, and the report adds the rate that matters: the muons at the shield end, entering
the decay vessel (P1) and crossing it (P2) per muon of each side, with standard errors from
per-muon counts (the copies of one muon are correlated), and the candidate's ratio and pull.
Give the candidate as generated muons without phi copies (a run without ``phi-rotation``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from shipfastsim.configs import DEFAULT_GEOMETRY
from shipfastsim.errors import UsageError
from shipfastsim.validation.features import PHYSICS_FEATURES

__all__ = ["register", "read_sample", "run_validate"]


def read_sample(files: Sequence[str | Path], max_rows: int | None = None, seed: int = 0, split: str = "all"):
    """The muons of ``files`` as one `MuonBatch`: those of the given split part (muon numbers
    counted over all files), thinned at random to about ``max_rows`` rows while streaming,
    so files of 10^7 muons need no more memory than the sample kept."""
    import numpy as np
    import torch

    from shipfastsim.adapters.fairship import count_entries, iter_ntuple
    from shipfastsim.batch import MuonBatch
    from shipfastsim.validation.split import SPLITS, split_mask

    low, high = SPLITS.get(split, (0.0, 1.0))
    expected = sum(count_entries(path) for path in files) * (high - low)
    fraction = 1.0 if not max_rows or expected <= max_rows else max_rows / expected
    rng = np.random.default_rng(seed)
    parts, first = [], 0
    for path in files:
        for batch in iter_ntuple(path, 1_000_000):
            keep = rng.random(len(batch)) < fraction
            if split != "all":
                keep &= split_mask(first + len(batch), split)[first:]
            first += len(batch)
            parts.append(batch.select(torch.as_tensor(keep)))
    return MuonBatch.concat(parts)


def run_validate(args: argparse.Namespace) -> int:
    from shipfastsim.validation.report import write_report

    for path in [*args.reference, *args.candidate]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
    if args.transport_copies < 0:
        raise UsageError(f"--transport-copies {args.transport_copies}: give 0 (no transport) or more copies")
    if not Path(args.geometry).is_file():
        raise UsageError(f"--geometry {args.geometry}: no such file")
    reference = read_sample(args.reference, args.max_rows, args.seed, args.reference_split)
    candidate = read_sample(args.candidate, args.max_rows, args.seed + 1)
    metrics = write_report(reference, candidate, args.output, args.features, tuple(args.labels), args.seed,
                           physics_features=args.physics_features, pairwise=args.pairwise)
    print(metrics.table())
    if args.transport_copies:
        _transport_rates(args)
    print(f"validate: report written to {Path(args.output) / 'report.md'}")
    return 0


def _transport_rates(args: argparse.Namespace) -> None:
    """Both sides through fast-shield (``--transport-copies``): the rates table, printed and
    written to ``DIR/transport_rates.md`` and ``.json``."""
    import json

    from shipfastsim.plugins.gan_target.transport_rates import file_rates, rates_table

    shield = {"geometry": str(args.geometry)}
    reference = file_rates(args.reference, args.transport_copies, args.seed, args.reference_split, None, shield)
    candidate = file_rates(args.candidate, args.transport_copies, args.seed + 1, "all", args.max_rows, shield)
    title = (f"After transport through fast-shield ({Path(args.geometry).name}), {args.transport_copies} "
             f"rotations per muon:")
    table = rates_table(reference, candidate, tuple(args.labels))
    print(f"{title}\n{table}")
    output = Path(args.output)
    (output / "transport_rates.md").write_text(f"{title}\n\n{table}\n")
    (output / "transport_rates.json").write_text(json.dumps(
        {"geometry": Path(args.geometry).name, "copies": args.transport_copies,
         "reference": {k: r.to_dict() for k, r in reference.items()},
         "candidate": {k: r.to_dict() for k, r in candidate.items()}}, indent=1) + "\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand."""
    parser = subparsers.add_parser("validate", help="validation report of candidate vs reference muon files",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", nargs="+", required=True, metavar="FILE", help="reference FairShip ntuples")
    parser.add_argument("--candidate", nargs="+", required=True, metavar="FILE", help="candidate FairShip ntuples")
    parser.add_argument("--output", required=True, type=Path, help="report directory")
    parser.add_argument("--reference-split", default="all", choices=("all", "train", "validation", "holdout"),
                        help="use only this part of the reference (the fixed split of shipfastsim.validation.split)")
    parser.add_argument("--features", nargs="+", default=None,
                        help="MuonBatch attributes to compare (default: x y z px py pz p pt charge)")
    parser.add_argument("--physics-features", nargs="+", default=list(PHYSICS_FEATURES), metavar="NAME",
                        help="subset with its own boosted-trees AUC, the fidelity gate (default: z px py pz charge)")
    parser.add_argument("--pairwise", action="store_true",
                        help="also the boosted-trees AUC of every pair of features (finds wrong correlations; slower)")
    parser.add_argument("--max-rows", type=int, default=200_000, help="random subsample of each side (rows)")
    parser.add_argument("--labels", nargs=2, default=("reference", "candidate"), metavar=("REF", "CAND"),
                        help="names of the two samples in the figures and tables (default: reference candidate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of subsampling, splits and the classifier")
    parser.add_argument("--transport-copies", type=int, default=0, metavar="K",
                        help="also carry both samples of target muons through fast-shield, K rotations per muon, and "
                             "compare their shield-end, P1 and P2 rates (default 0: no transport)")
    parser.add_argument("--geometry", type=Path, default=DEFAULT_GEOMETRY,
                        help="shield geometry of --transport-copies (default: the default geometry, TRY_2026)")
    parser.set_defaults(func=run_validate)
