"""Generator ``nf-decay-vessel``: only the muons that enter the decay vessel (P1), from a flow of their own.

The structured latent of ``nf-after-shield`` enriches P1 but its one 16k-parameter
model spends its capacity on the inclusive sample: on 6,018 held-out transported P1
muons the boosted trees separate its P1 muons with AUC 0.67-0.77 (sigma 1 to 1.6),
against 0.515 for this generator on 13,955.
P1 is a box in the coordinates of the vessel entrance, |x_e| <= entrance_half_x and
|y_e| <= entrance_half_y with x_e = x + (px / pz) dz, dz = z_entrance - z_shield_end
(`DecayVessel.labels`, straight tracks).  This flow (a `MuonFlow` of three
autoregressive spline transforms, trained on P1 muons only) works on

    u_x = atanh(x_e / entrance_half_x),  u_y = atanh(y_e / entrance_half_y)

in place of x and y, so the box is the whole of its space: every muon it makes is in
P1 by construction, and the sharp aperture edges, which a flow would smear, are exact.
`from_entrance_box` maps its output back to x, y at the shield end.

Weights: the P1 muons per POT are the P1 fraction of the training transport (model
JSON) times the shield-end rate (``shield_end_muons_per_pot``, else flow-target's rate
x the transport's shield-end fraction), so weighted totals are the P1 muons per spill
of the transported chain.  P2 (the straight track also leaves through the vessel
exit): the bundled flow is conditioned on the P2 flag as well as the charge
(`p2_flag`), so P2 is drawn with the training transport's share of each charge and
each region is exact; ``p2_share`` draws P2 at another share, with exact weights
(1: P2 muons only).  Units: cm, GeV/c.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipfastsim.components import ComponentSpec, Parameter, SampleNormalisation, Stage
from shipfastsim.configs import DEFAULT_GEOMETRY, DEFAULT_MODEL_SET
from shipfastsim.plugins.nf_after_shield.entrance_box import from_entrance_box, to_entrance_box

if TYPE_CHECKING:
    import torch

    from shipfastsim.batch import MuonBatch
    from shipfastsim.components import ChunkContext

__all__ = ["COMPONENT", "BUNDLED_WEIGHTS", "HOLDOUT", "INDEPENDENT", "to_entrance_box", "from_entrance_box",
           "p2_shares", "sample_output", "generate", "train_decay_vessel"]

#: The bundled flow for the default geometry (`DEFAULT_MODEL_SET`), its JSON beside it.
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / DEFAULT_MODEL_SET / "nf_decay_vessel.safetensors"
#: The held-out P1 rows of its training transport.
HOLDOUT = BUNDLED_WEIGHTS.parent / "holdout_decay_vessel.npz"
#: Every P1 muon of transport runs no model was trained on, for validation (TRY_2025: data
#: seeds 16 and 17; TRY_2026: the chain samples of seeds 2026 and 2027, docs/try2026.md).
INDEPENDENT = BUNDLED_WEIGHTS.parent / "independent_decay_vessel.npz"
def _normalisation(params: dict[str, Any]) -> SampleNormalisation:
    """P1 muons per POT: the P1 fraction of the training transport (model JSON) times the
    shield-end rate, ``shield_end_muons_per_pot`` when given, else `transported_rate`."""
    from shipfastsim.plugins.nf_after_shield.sampling import transported_rate

    rate, data = transported_rate(params["weights"])
    p1 = data["p1_fraction"]
    if params.get("shield_end_muons_per_pot"):
        given = float(params["shield_end_muons_per_pot"])
        return SampleNormalisation(given * p1, f"parameter shield_end_muons_per_pot {given:.4g} x P1 fraction "
                                               f"{p1:.4g} of the training transport (fast-shield)")
    if rate.muons_per_pot is None:
        return SampleNormalisation(None, f"{rate.source}, P1 fraction {p1:.4g}")
    return SampleNormalisation(rate.muons_per_pot * p1, f"{rate.source} x P1 fraction {p1:.4g}")


def _check(params: dict[str, Any], run: dict[str, Any]) -> tuple[str, str] | None:
    """``p2_share`` is a probability, and needs a flow conditioned on the P2 flag."""
    share = params.get("p2_share", 0.0)
    if share > 1.0:
        return "p2_share", f"{share} is not a probability: give a share in [0, 1] (1: P2 muons only)"
    if share:
        from shipfastsim.plugins.nf_after_shield.sampling import model_sidecar

        has_sidecar = Path(params["weights"]).with_suffix(".json").is_file()
        contexts = model_sidecar(params["weights"])["architecture"].get("contexts", 1) if has_sidecar else 1
        if contexts != 2:
            return "p2_share", (f"the flow {params['weights']} is not conditioned on the P2 flag (FlowConfig.contexts "
                                f"{contexts}): a share of P2 muons needs one that is, as the bundled weights")
    return None


COMPONENT = ComponentSpec(
    name="nf-decay-vessel",
    kind="generator",
    description="muons at the end of the shield that enter the decay vessel (P1), from a flow of P1 muons (cm, GeV/c)",
    parameters=(
        Parameter("weights", "path", str(BUNDLED_WEIGHTS), "flow weights (.safetensors, JSON config beside)"),
        Parameter("geometry", "path", str(DEFAULT_GEOMETRY), "geometry whose decay-vessel entrance defines P1"),
        Parameter("p2_share", "float", 0.0,
                  "share of the muons drawn from P2 (their straight track also leaves through the vessel exit): "
                  "0 = the transported share, weights 1; larger enriches P2 with exact weights; 1 = P2 muons only "
                  "(needs weights trained with the P2 flag, as the bundled ones)", minimum=0.0),
        Parameter("shield_end_muons_per_pot", "float", 0.0,
                  "all muons at the shield end per proton on target, times the trained P1 fraction gives the "
                  "weights (0: from flow-target's rate, unknown for the bundled one)", minimum=0.0),
    ),
    normalisation=_normalisation,
    check=_check,
)


def _build(stage: Stage):
    from shipfastsim.geometry import load_geometry
    from shipfastsim.geometry.decay_vessel import DecayVessel
    from shipfastsim.plugins.nf_after_shield.fast import cpu_engine
    from shipfastsim.plugins.nf_after_shield.model import NoiseToMuon, load_flow
    from shipfastsim.plugins.nf_after_shield.p2_flag import FlaggedNoiseToMuon
    from shipfastsim.plugins.nf_after_shield.sampling import model_sidecar

    flow = load_flow(stage.params["weights"], stage.device)
    p2_share = None  # the P2 shares by charge of a flow conditioned on the P2 flag (model JSON)
    if flow.config.contexts == 2:
        engine = FlaggedNoiseToMuon(flow).eval()
        p2_share = model_sidecar(stage.params["weights"])["data"]["p2_share_by_charge"]
    else:
        engine = cpu_engine(flow) if stage.device.type == "cpu" else NoiseToMuon(flow).eval()
    vessel = DecayVessel.from_geometry(load_geometry(stage.params["geometry"]))
    return engine, flow.config.z_plane, vessel, p2_share


def _model(stage: Stage):
    """(engine, z of the plane [cm], vessel, P2 shares or None), built once per stage."""
    return stage.cached("model", lambda: _build(stage))


def p2_shares(stage: Stage) -> dict[str, float] | None:
    """The P2 shares by charge ("mu-", "mu+") the stage's flow samples with; None for a flow
    not conditioned on the P2 flag."""
    return _model(stage)[3]


def sample_output(stage: Stage, n_muons: int, context: ChunkContext, p2_drawn: dict[str, float] | None = None
                  ) -> tuple[torch.Tensor, float]:
    """Rows [n, 8] (x, y, z [cm] at the shield end, px, py, pz [GeV/c], PDG id, weight: 1
    unless ``p2_share``; float64) of ``n_muons`` P1 muons, and the z [cm] of their plane.
    ``p2_drawn`` (by charge, for a flow conditioned on the P2 flag) replaces ``p2_share``:
    the nested latent of the composite model (`nested`)."""
    from shipfastsim.plugins.gan_target import redraw_above_beam
    from shipfastsim.plugins.nf_after_shield.p2_flag import sample_flagged
    from shipfastsim.plugins.nf_after_shield.sampling import draw_noise, run_engine

    engine, z_plane, vessel, p2_share = _model(stage)
    if p2_share is not None:
        drawn = p2_drawn if p2_drawn is not None else float(stage.params["p2_share"])
        return sample_flagged(engine, n_muons, context.generator, p2_share, vessel, stage.device, drawn), z_plane

    def make(n: int) -> torch.Tensor:
        return run_engine(engine, draw_noise(n, context.generator).to(stage.device)).double()

    out = redraw_above_beam(make(n_muons), make)  # the flow's rare tail beyond the beam momentum
    out[:, 0], out[:, 1] = from_entrance_box(out[:, 0], out[:, 1], out[:, 3], out[:, 4], out[:, 5], vessel, z_plane)
    return out, z_plane


def generate(stage: Stage, n_muons: int, context: ChunkContext) -> MuonBatch:
    """``n_muons`` P1 muons at the shield end (weights 1, or the exact ``p2_share`` weights;
    the normalisation gives them per-spill meaning)."""
    from shipfastsim.plugins.nf_after_shield.sampling import muons_from_output

    out, z_plane = sample_output(stage, n_muons, context)
    return muons_from_output(out, context.first_muon, stage.device, z_plane)


def train_decay_vessel(files: list[str | Path], output: str | Path, steps: int = 48_000, seed: int = 2026,
                       hidden: int = 48, coupling: str = "autoregressive-spline", layers: int = 3, bins: int = 8,
                       p2_context: bool = True, p2_emphasis: float = 0.0, mirror_y: bool = True,
                       every_row: bool = True, geometry: str | Path = DEFAULT_GEOMETRY, batch_size: int = 2048,
                       eval_every: int = 250, max_minutes: float = 150.0, patience: int = 0,
                       progress: bool = True) -> Path:
    """Train the flow on the P1 rows of the training and validation splits of ``files``
    (`nf_after_shield.data.make_training_data` outputs, each split by target muon as for
    nf-after-shield, so their holdouts stay unseen); write weights, JSON and the holdout
    P1 rows (``holdout_decay_vessel.npz``) to ``output``.  The defaults are the bundled
    model's: three autoregressive rational-quadratic spline transforms of 8 bins, hidden
    48, conditioned on the charge and the P2 flag (``p2_context``; 25,848 parameters;
    `model.FlowConfig`), 48,000 steps, on the training rows and their mirror images in y
    (``mirror_y``, `train.mirrored_in_y`: the transported muons are symmetric in y, u_y and
    py odd) and on every row the inner split does not validate on (``every_row``: its
    holdout rows are not the files' holdout, so they train too).  ``p2_emphasis`` adds that
    weight times the mean likelihood of a batch of P2 rows to the loss (tried; not the
    bundled recipe).  ``geometry``: the YAML whose decay vessel the files' labels come from
    (the default geometry for the bundled model); ``batch_size``, ``eval_every`` (steps between
    validations), ``max_minutes`` (wall-clock limit) and ``patience`` (validations without a
    better loss before stopping; 0: never) size the training."""
    from dataclasses import asdict

    import numpy as np

    from shipfastsim.geometry import load_geometry
    from shipfastsim.geometry.decay_vessel import DecayVessel
    from shipfastsim.plugins.nf_after_shield.data import TrainingData, load_training_data, split_indices
    from shipfastsim.plugins.nf_after_shield.model import FlowConfig, save_flow
    from shipfastsim.plugins.nf_after_shield.train import TrainConfig, train_flow, training_provenance

    vessel = DecayVessel.from_geometry(load_geometry(geometry))
    states, labels, groups, holdout, recipes, provenances = [], [], [], [], [], []
    shield_end = target = p1 = 0
    for k, path in enumerate(files):
        d = load_training_data(path)
        split = split_indices(d.groups())
        seen = np.concatenate([split["train"], split["validation"]])
        seen = seen[d.label[seen] >= 1]
        rows = split["holdout"][d.label[split["holdout"]] >= 1]
        states.append(d.state[seen])
        labels.append(d.label[seen])
        groups.append(d.groups()[seen] + k * 10**12)  # target muons of different files are different muons
        holdout.append((d.state[rows], d.label[rows], len(split["holdout"])))
        shield_end, target, p1 = shield_end + len(d.label), target + d.n_target, p1 + int((d.label >= 1).sum())
        recipes.append(d.recipe)
        provenances.append(d.provenance)
        z_plane = d.z_plane
    data = TrainingData(to_entrance_box(np.concatenate(states), vessel, z_plane), np.concatenate(labels), target,
                        0.0, z_plane, np.concatenate(groups))
    if p2_emphasis and not p2_context:
        raise ValueError("p2_emphasis weights the P2 rows' likelihood, which biases a flow unless it is "
                         "conditioned on the P2 flag: set p2_context")
    # With the flag a condition, extra weight on the P2 rows leaves both conditional optima
    # where they were and gives the P2 density more of the network (sigmas 1: no structured latent).
    config = TrainConfig(seed=seed, steps=steps, batch_size=batch_size, subset_batch=1024 if p2_emphasis else 64,
                         lambdas=(0.0, p2_emphasis), eval_every=eval_every, max_minutes=max_minutes,
                         patience=patience,
                         mirror_y=mirror_y,
                         train_on_holdout_split=every_row,
                         flow=FlowConfig(knots=48, hidden=hidden, coupling=coupling, layers=layers, bins=bins,
                                         contexts=2 if p2_context else 1,
                                         sigmas=(1.0, 1.0, 1.0) if p2_emphasis else FlowConfig.sigmas))
    result = train_flow(data, config, progress=progress)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output / HOLDOUT.name, state=np.concatenate([h[0] for h in holdout]).astype(np.float32),
                        label=np.concatenate([h[1] for h in holdout]), holdout_rows=sum(h[2] for h in holdout),
                        z_plane=z_plane)
    metadata = {
        "training": {k: v for k, v in asdict(config).items() if k != "flow"},
        "best_step": result.best_step, "best_validation_loss": result.best_loss, "train_seconds": result.seconds,
        "data": {"recipe": " + ".join(recipes), "files": [Path(f).name for f in files], "target_muons": target,
                 "rows_at_shield_end": shield_end, "p1_rows": p1, "p1_training_rows": int(len(data.label)),
                 "shield_end_per_target_muon": shield_end / target, "p1_fraction": p1 / shield_end,
                 "p2_share_by_charge": {name: float((data.label[data.state[:, 5] == sign] >= 2).mean())
                                        for name, sign in (("mu-", -1.0), ("mu+", 1.0))},
                 "coordinates": "u_x, u_y = atanh(vessel-entrance x, y / entrance half-widths), px/pz, py/pz, log pz"},
        "provenance": training_provenance(provenances, int(len(data.label)), config.seed),
    }
    return save_flow(result.flow, output / BUNDLED_WEIGHTS.name, metadata)


if __name__ == "__main__":  # python -m shipfastsim.plugins.nf_after_shield.decay_vessel OUTPUT DATA.npz [DATA.npz ...]
    import sys

    import torch

    torch.set_num_threads(1)
    print(train_decay_vessel(sys.argv[2:], sys.argv[1]))
