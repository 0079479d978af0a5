"""``shipfastsim train mlp-filter --output DIR``: label target muons, train, write weights.

Without ``--input`` the trainer first labels ``--muons`` gan-target muons x
``--copies`` phi rotations with fast-shield (`labels.label_target_muons`) and saves
them as ``DIR/labelled_muons.npz``; with ``--input`` it reads such files instead (no
transport; several files, e.g. parts labelled with consecutive ``first_muon``, are
concatenated).  It then trains (`train.train_filter`), writes
``DIR/mlp_filter.safetensors`` with its JSON sidecar, and a small stratified copy of
the holdout split, ``DIR/mlp_filter_holdout.npz`` (every dangerous muon, random
fractions of the others above and below the threshold with weight / fraction), which
the tests use to check the bundled model without a transport run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from shipfastsim.plugins.mlp_filter.labels import LabelledMuons

__all__ = ["train_mlp_filter", "write_holdout", "HOLDOUT_NAME", "HOLDOUT_ROWS"]

HOLDOUT_NAME = "mlp_filter_holdout.npz"
#: Rows of the shipped holdout copy (about 40 bytes each, compressed).
HOLDOUT_ROWS = 6000


def write_holdout(sample, net, threshold: float, label: str, output: Path, seed: int) -> Path:
    """The stratified holdout copy (see the module docstring) for a trained ``net``.

    Every dangerous muon (``label`` or P2) is kept; of the others, about
    ``HOLDOUT_ROWS / 2`` of those past the threshold and as many below it, each with
    weight 1 / (its keep probability), so that weighted recall and reduction factor are
    unbiased and both are measured with small statistical errors.
    """
    from shipfastsim.plugins.mlp_filter.labels import save_labelled, stratified_subsample
    from shipfastsim.plugins.mlp_filter.train import score, split_of

    holdout = sample.select(split_of(sample, "holdout"))
    dangerous = holdout.labels[label] | holdout.labels["P2"]
    passed = score(net, holdout.state) >= threshold
    budget = max(HOLDOUT_ROWS - int(dangerous.sum()), 200) / 2
    probability = np.ones(len(holdout))
    for stratum in (passed & ~dangerous, ~passed & ~dangerous):
        probability[stratum] = min(1.0, budget / max(int(stratum.sum()), 1))
    small = stratified_subsample(holdout, probability, seed)
    small.meta |= {"split": "holdout", "strata": f"{label} or P2; past the threshold {threshold:.6g}; below it"}
    return save_labelled(small, output / HOLDOUT_NAME)


def train_mlp_filter(args: argparse.Namespace, sample: LabelledMuons | None = None) -> int:
    """Label (or read) muons, train the filter and write weights, sidecar and holdout copy;
    ``sample``: labelled muons already in memory, used in place of ``args.input``."""
    from shipfastsim.plugins.mlp_filter.labels import concat_labelled, label_target_muons, load_labelled, save_labelled
    from shipfastsim.plugins.mlp_filter.train import TrainConfig, train_filter

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    if sample is None and args.input:
        missing = [f for f in args.input if not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(f"labelled .npz files not found: {missing}")
        sample = concat_labelled([load_labelled(f) for f in args.input])
    elif sample is None:
        muons = 400_000 if args.muons is None else args.muons
        sample = label_target_muons(muons, copies=args.copies, seed=args.seed, progress=not args.quiet)
        save_labelled(sample, output / "labelled_muons.npz")
    overrides = {"epochs": args.max_steps, "patience": args.patience, "max_minutes": args.max_minutes,
                 "batch_size": args.batch_size, "hidden": args.hidden, "layers": args.layers}
    config = TrainConfig(label=args.label, seed=args.seed, **{k: v for k, v in overrides.items() if v is not None})
    result = train_filter(sample, output, config, progress=not args.quiet)
    threshold = json.loads(result.weights_path.with_suffix(".json").read_text())["working_point"]["threshold"]
    write_holdout(sample, result.net, threshold, config.label, output, args.seed)
    for name, figures in (("validation", result.validation), ("holdout", result.holdout)):
        print(f"mlp-filter {name}: recall {figures['recall']:.4f} of {figures['dangerous']} {config.label} muons, "
              f"reduction factor {figures['reduction']:.1f} (ideal {figures['ideal_reduction']:.1f}); "
              f"threshold {threshold:.4g}")
    positives = int(np.sum(sample.labels[config.label]))
    print(f"trained on {len(sample):,} labelled muons ({positives:,} {config.label}); weights {result.weights_path}")
    return 0
