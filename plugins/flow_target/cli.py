"""``shipfastsim train flow-target``: train the target flow (dispatched from the ``train`` command's TRAINERS)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["train_flow_target"]


def train_flow_target(args: argparse.Namespace) -> int:
    """Train the flow on ``args.input`` (default: the shipped 10k sample) and write weights + config to ``args.output``.

    Uses the ``train`` options shared with gan-target: ``--max-steps``, ``--eval-every``,
    ``--patience``, ``--max-minutes``, ``--batch-size`` (optimiser steps, evaluations, rows)
    and ``--hidden``, ``--layers`` (each coupling's MLP).
    """
    from shipfastsim.data import SHIP_SAMPLE  # the sample the bundled target generators were trained on
    from shipfastsim.plugins.flow_target.model import FlowConfig
    from shipfastsim.plugins.flow_target.train import FlowTrainConfig, train_flow

    files = args.input or [str(SHIP_SAMPLE)]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"input files not found: {missing}")
    overrides = {k: getattr(args, k) for k in ("max_steps", "eval_every", "patience", "max_minutes", "batch_size")
                 if getattr(args, k) is not None}
    if getattr(args, "select_on_rate", 0):
        overrides["rate_generated"] = args.select_on_rate
    architecture = {k: getattr(args, k) for k in ("hidden", "layers") if getattr(args, k) is not None}
    config = FlowTrainConfig(seed=args.seed, flow=FlowConfig(**architecture), **overrides)
    result = train_flow(files, args.output, config, progress=not args.quiet, device=args.device,
                        spill_pot=args.weights_spill_pot)
    print(f"flow-target: best validation score {result.best_metric:.4f} at step {result.best_step} "
          f"of {result.steps}; weights {result.weights_path} (config beside it)")
    return 0
