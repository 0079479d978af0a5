"""``shipfastsim train chain --geometry G --truth T --output DIR``: the command line of the chain.

Its own options are added to the ``train`` parser (`add_arguments`); the shared ones
size it: ``--muons`` generated target muons (default `DEFAULT_MUONS`, the bundled
nf-after-shield recipe's), ``--copies`` phi rotations, ``--seed`` (the transport run's and
every training's), ``--max-steps`` (both flows' steps), ``--hidden`` / ``--layers`` (all
three networks), ``--batch-size``, ``--eval-every``, ``--max-minutes`` and ``--patience``
(both flows stop after that many validations without a better loss).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["DEFAULT_MUONS", "CHUNK", "add_arguments", "settings_from_arguments", "train_chain"]

#: Generated target muons of the default chain (each in ``--copies`` phi rotations).
DEFAULT_MUONS = 1_500_000
#: Generated muons per transport chunk (chunk k draws from (seed, k): part of the sample's recipe).
CHUNK = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only ``train chain`` takes."""
    from shipfastsim.plugins.train_chain import GENERATORS, TRUTHS

    parser.add_argument("--geometry", help="chain: shield geometry YAML the sample is transported through; "
                                           "nf-after-shield: the geometry whose decay vessel labels the validation "
                                           "muons (default: the default geometry, TRY_2026)")
    parser.add_argument("--truth", choices=TRUTHS, help="chain: the propagator that makes the training sample")
    parser.add_argument("--generator", choices=GENERATORS, default="flow-target",
                        help="chain: target-muon generator of the sample (bundled weights; default: %(default)s, "
                             "the default production chain's)")
    parser.add_argument("--generator-weights", metavar="SAFETENSORS",
                        help="chain: weights of --generator (default: its bundled weights), e.g. a flow-target "
                             "trained on a FairShip production: the sample is made of its muons and its "
                             "normalisation")
    parser.add_argument("--workers", type=int, default=2,
                        help="chain: local dask workers of the transport (any number gives the same sample)")
    parser.add_argument("--filter-epochs", type=int, help="chain: mlp-filter epochs (default: its TrainConfig)")
    parser.add_argument("--filter-muons", type=int, metavar="N",
                        help="chain: mlp-filter learns from the copies of the sample's first N generated muons "
                             "(default 3000000, which fits in 24 GB)")
    parser.add_argument("--chunk", type=int, default=CHUNK,
                        help="chain: generated muons per transport chunk (chunk k draws from (seed, k), so it is "
                             "part of the sample's recipe; default: %(default)s)")


def settings_from_arguments(args: argparse.Namespace):
    """`ChainSettings` from the parsed arguments; bad input raises `UsageError`."""
    from shipfastsim.errors import UsageError
    from shipfastsim.plugins.train_chain.sample import SampleSettings
    from shipfastsim.plugins.train_chain.steps import ChainSettings, TrainingKnobs

    if not args.geometry or not args.truth:
        raise UsageError("train chain needs --geometry (a shield geometry YAML) and --truth (one of fast-shield, "
                         "geant4-shield, reference-shield)")
    if not Path(args.geometry).is_file():
        raise UsageError(f"--geometry {args.geometry}: no such file")
    from shipfastsim.geometry import load_geometry

    try:
        geometry = load_geometry(args.geometry)
    except ValueError as error:  # GeometryError, ConfigError: not a valid shield
        raise UsageError(f"--geometry {args.geometry}: {error}") from None
    if geometry.decay_vessel is None:
        raise UsageError(f"--geometry {args.geometry}: {geometry.name} has no decay_vessel section, which the P1 "
                         f"and P2 labels need")
    weights = getattr(args, "generator_weights", None)
    if weights is not None:
        if not Path(weights).is_file() or not Path(weights).with_suffix(".json").is_file():
            raise UsageError(f"--generator-weights {weights}: needs the .safetensors file and its .json beside it")
        weights = str(Path(weights).resolve())
    muons = DEFAULT_MUONS if args.muons is None else args.muons
    for name, value in (("--muons", muons), ("--copies", args.copies), ("--workers", args.workers),
                        ("--chunk", args.chunk)):
        if value < 1:
            raise UsageError(f"{name} {value}: must be at least 1")
    if getattr(args, "filter_muons", None) is not None and args.filter_muons < 1:
        raise UsageError(f"--filter-muons {args.filter_muons}: must be at least 1")
    if getattr(args, "knots", None) is not None and args.knots < 4:
        raise UsageError(f"--knots {args.knots}: a Gaussianising map needs at least 4 knots")
    sample = SampleSettings(geometry=str(Path(args.geometry).resolve()), truth=args.truth, generator=args.generator,
                            muons=muons, copies=args.copies, seed=args.seed, chunk=args.chunk,
                            generator_weights=weights)
    knobs = TrainingKnobs(flow_steps=args.max_steps, filter_epochs=args.filter_epochs, hidden=args.hidden,
                          layers=args.layers, batch_size=args.batch_size, eval_every=args.eval_every,
                          max_minutes=args.max_minutes, patience=args.patience,
                          knots=getattr(args, "knots", None), filter_muons=getattr(args, "filter_muons", None))
    return ChainSettings(sample, knobs)


def train_chain(args: argparse.Namespace) -> int:
    """Run or resume the chain; print where the report is and whether every gate passed."""
    from shipfastsim.plugins.train_chain.steps import run_chain

    report = run_chain(settings_from_arguments(args), args.output, workers=args.workers, progress=not args.quiet)
    for name, model in report["models"].items():
        failed = [g["gate"] for g in model["gates"] if not g["passed"]]
        print(f"{name}: " + ("every gate passed" if not failed else "failed " + ", ".join(failed)))
    print(f"report: {Path(args.output) / 'report' / 'report.md'} (and report.json)")
    return 0
