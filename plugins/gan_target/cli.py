"""``shipfastsim train COMPONENT``: train a neural component.

``flow-target`` and ``gan-target`` learn the muons at the target from FairShip
pythia8-Geant4 ntuples (default: the shipped SHiP sample; weighted files honoured);
``nf-after-shield`` and ``mlp-filter`` learn from muons transported by ``fast-shield``;
``chain`` retrains nf-after-shield, nf-decay-vessel and mlp-filter for one shield
geometry and one truth (``--geometry``, ``--truth``), writes a report with their gates,
and resumes where an interrupted run stopped.  Each writes its weights (.safetensors)
and a JSON beside them recording what the model learnt from.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["register", "TRAINERS", "train_gan_target"]


def train_gan_target(args: argparse.Namespace) -> int:
    """Train the target GAN on ``args.input`` and write weights + config to ``args.output``."""
    from shipfastsim.data import SHIP_SAMPLE  # the sample the bundled target generators were trained on
    from shipfastsim.plugins.gan_target.model import GanConfig
    from shipfastsim.plugins.gan_target.train import TrainConfig, train

    files = args.input or [str(SHIP_SAMPLE)]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"input files not found: {missing}")
    defaults = TrainConfig()
    overrides = {k: getattr(args, k) for k in ("max_steps", "eval_every", "patience", "max_minutes", "batch_size")
                 if getattr(args, k) is not None}
    if getattr(args, "select_on_rate", 0):
        overrides["rate_generated"] = args.select_on_rate
    gan = GanConfig(**{k: getattr(args, k) if getattr(args, k) is not None else getattr(defaults.gan, k)
                       for k in ("hidden", "layers")})
    config = TrainConfig(seed=args.seed, gan=gan, **overrides)
    result = train(files, args.output, config, progress=not args.quiet, device=args.device,
                   spill_pot=args.weights_spill_pot)
    print(f"gan-target: best validation score {result.best_metric:.4f} at step {result.best_step} "
          f"of {result.steps}; weights {result.weights_path} (config beside it)")
    return 0


def _train_nf_after_shield(args: argparse.Namespace) -> int:
    from shipfastsim.plugins.nf_after_shield.cli import train_nf_after_shield

    return train_nf_after_shield(args)


#: Component name -> trainer taking the parsed arguments.
TRAINERS: dict[str, Callable[[argparse.Namespace], int]] = {"gan-target": train_gan_target,
                                                            "nf-after-shield": _train_nf_after_shield}


def _train_mlp_filter(args: argparse.Namespace) -> int:
    from shipfastsim.plugins.mlp_filter.cli import train_mlp_filter

    return train_mlp_filter(args)


TRAINERS["mlp-filter"] = _train_mlp_filter


def _train_flow_target(args: argparse.Namespace) -> int:
    from shipfastsim.plugins.flow_target.cli import train_flow_target

    return train_flow_target(args)


TRAINERS["flow-target"] = _train_flow_target


def _train_chain(args: argparse.Namespace) -> int:
    from shipfastsim.plugins.train_chain.cli import train_chain

    return train_chain(args)


TRAINERS["chain"] = _train_chain


def _run(args: argparse.Namespace) -> int:
    return TRAINERS[args.component](args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser("train", help="train a neural component (" + ", ".join(sorted(TRAINERS)) + ")",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("component", choices=sorted(TRAINERS), help="component to train")
    parser.add_argument("--input", nargs="+", metavar="FILE",
                        help="gan-target, flow-target: FairShip pythia8-Geant4 ntuples (default: the shipped 50k SHiP "
                             "sample); "
                             "mlp-filter: labelled .npz files (default: label --muons gan-target muons)")
    parser.add_argument("--output", required=True, type=Path, help="directory for weights, config and checkpoint")
    parser.add_argument("--seed", type=int, default=2024, help="training seed")
    parser.add_argument("--max-steps", type=int,
                        help="maximum generator steps (default: TrainConfig); chain: steps of both flows")
    parser.add_argument("--eval-every", type=int, help="generator steps between validations (default: TrainConfig)")
    parser.add_argument("--patience", type=int,
                        help="validations without improvement before stopping (default: TrainConfig); chain: "
                             "both flows (default: all their steps)")
    parser.add_argument("--max-minutes", type=float, help="wall-clock safety limit [min] (default: TrainConfig)")
    parser.add_argument("--batch-size", type=int, help="muons per batch (default: TrainConfig)")
    parser.add_argument("--hidden", type=int,
                        help="generator hidden width (default: GanConfig); chain: of all three networks")
    parser.add_argument("--layers", type=int,
                        help="generator hidden layers (default: GanConfig); chain: of all three networks")
    parser.add_argument("--knots", type=int,
                        help="nf-after-shield: knots of each Gaussianising map (default FlowConfig: 48; a shield "
                             "whose muons have sharp edges in x and px needs more); chain: nf-after-shield's")
    parser.add_argument("--muons", type=int,
                        help="mlp-filter: gan-target muons to label with fast-shield (without --input; default "
                             "400000); chain: generated target muons of the sample (default 1500000)")
    parser.add_argument("--copies", type=int, default=10,
                        help="mlp-filter, chain: phi-rotated copies of each target muon")
    parser.add_argument("--label", choices=("P1", "P2", "shield_end"), default="P1",
                        help="mlp-filter: what counts as dangerous (P1: enters the decay-vessel aperture)")
    parser.add_argument("--target-muons", type=int,
                        help="nf-after-shield: flow-target muons for the training data, each transported in 10 "
                             "phi-rotated copies (default 1.5 x 10^6)")
    parser.add_argument("--peer", action="store_true",
                        help="nf-after-shield: also train the zuko RealNVP peer and print its tables")
    parser.add_argument("--weights-spill-pot", type=float, metavar="POT",
                        help="gan-target, flow-target: protons on target per spill that the input files' w refer to "
                             "(w = muons per spill of POT protons; 5e13 for the 2018 SHiP background production): "
                             "the model records muons_per_pot = sum(w) / POT, so runs of it write per-spill weights")
    parser.add_argument("--select-on-rate", type=int, default=0, metavar="N",
                        help="gan-target, flow-target: also select the model on its decay-vessel (P1) rate after "
                             "the shield: at every validation N generated muons x 2 phi copies go through "
                             "fast-shield and a model pays for a pull beyond 1 sigma against the input files' own "
                             "train and validation muons x 40 (about 500000; 0: off)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    from shipfastsim.plugins.train_chain.cli import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=_run)
