"""Generator ``nf-after-shield`` (structured normalising flow) and filter ``decay-vessel-subset``.

``nf-after-shield`` draws muons directly at the end of the muon shield (``shield_end``
plane of the default geometry, ``configs/geometry/ship_try2026.yaml``): x, y, z [cm], px, py, pz [GeV/c], PDG
id, from a RealNVP coupling flow (`model`) trained with the structured loss (`train`)
on fast-shield-transported flow-target muons (`data`: the default chain).  ``latent_sigma`` != 1 samples the
latent from N(0, sigma^2 I); at `DANGEROUS_SIGMAS` (1.3, 1.6) this concentrates the
muons on the decay-vessel subsets P1/P2 (for the bundled model their muons sit in the
latent tails, see `model`) (`shipfastsim.geometry.decay_vessel`); every muon then carries the exact weight
N(z; 0, I) / N(z; 0, sigma^2 I), so weighted totals equal the inclusive model's.  The
stage counts, per chunk, the muons and weights of each subset (straight tracks from
the shield end, `DecayVessel.labels`), and the run report prints the enrichment and
the effective sample size.

``decay-vessel-subset`` keeps the muons of subset P1 or P2 (a deterministic selection:
weights unchanged); it is how ``configs/after_shield_latent_sigma.yaml`` writes only the
decay-vessel muons of the nested latent.

``nf-decay-vessel`` (`decay_vessel`) generates only P1 muons, from a flow trained on
them alone in the coordinates of the vessel entrance.  With ``p1_source:
nf-decay-vessel`` (latent sigma 1), ``nf-after-shield`` is a composite model: a mixture
of that specialist, with the P1 fraction of its training transport, and of this flow
restricted to the muons outside P1.  Its component is a latent variable with an exact
structure: ``p1_share`` draws the specialist more often, with exact weights, up to
decay-vessel muons only (``configs/after_shield_dangerous.yaml``), and ``latent_sigma``
< 1 draws it through a nested latent whose radius picks P1, and P2 inside it (`nested`;
``configs/after_shield_latent_sigma.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipfastsim.components import (
    ChunkContext,
    ComponentSpec,
    ExportDescription,
    FilterDecision,
    Parameter,
    SampleNormalisation,
    Stage,
)
from shipfastsim.configs import DEFAULT_GEOMETRY, DEFAULT_MODEL_SET
from shipfastsim.hookspecs import hookimpl
from shipfastsim.plugins.nf_after_shield.decay_vessel import BUNDLED_WEIGHTS as DECAY_VESSEL_WEIGHTS
from shipfastsim.plugins.nf_after_shield.decay_vessel import COMPONENT as DECAY_VESSEL
from shipfastsim.plugins.nf_after_shield.sampling import (
    NOISE_WIDTH,
    draw_noise,
    envelope,
    model_sidecar,
    muons_from_output,
    outside_envelope,
    run_engine,
    transported_rate,
)

# torch and the model are imported where used: `shipfastsim --help` imports this package
# and must not wait for torch.
if TYPE_CHECKING:
    import torch

    from shipfastsim.batch import MuonBatch

__all__ = ["COMPONENT", "SUBSET_FILTER", "DECAY_VESSEL", "BUNDLED_WEIGHTS", "DANGEROUS_SIGMAS", "P1_SOURCES",
           "NOISE_WIDTH", "draw_noise", "run_engine", "muons_from_output", "transported_rate", "subset_counters",
           "format_report", "model_sidecar"]

#: The bundled flow for the default geometry (`DEFAULT_MODEL_SET`), its JSON beside it.
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / DEFAULT_MODEL_SET / "nf_after_shield.safetensors"
#: Latent sigmas that enrich P1 and P2 with the bundled model (measured: their muons sit in
#: the latent tails, see `model`).  The composite model's are `nested.NESTED_SIGMAS`.
DANGEROUS_SIGMAS = (1.3, 1.6)
#: Sources of the muons that enter the decay vessel (parameter ``p1_source``).
P1_SOURCES = ("inclusive", "nf-decay-vessel")
_PREFIX = "nf-after-shield:"


def _check(params: dict[str, Any], run: dict[str, Any]) -> tuple[str, str] | None:
    """``p1_share`` is a probability, needs the P1 muons of nf-decay-vessel, and is not
    given beside ``latent_sigma``, which sets the same share through the nested latent."""
    composite = params.get("p1_source") == "nf-decay-vessel"
    share = params.get("p1_share", 0.0)
    if share > 1.0:
        return "p1_share", f"{share} is not a probability: give a share in [0, 1] (1: decay-vessel muons only)"
    if share and not composite:
        return "p1_share", "a share of decay-vessel muons needs p1_source: nf-decay-vessel"
    if share and params.get("latent_sigma", 1.0) != 1.0:
        return "p1_share", ("give p1_share or latent_sigma, not both: with p1_source nf-decay-vessel each sets the "
                            "share of decay-vessel muons")
    return None


def _normalisation(params: dict[str, Any]) -> SampleNormalisation:
    """Muons per POT at the shield end: the ``muons_per_pot`` parameter when given, else
    `transported_rate` of the weights."""
    if params.get("muons_per_pot"):
        return SampleNormalisation(float(params["muons_per_pot"]), "nf-after-shield parameter muons_per_pot")
    return transported_rate(params["weights"])[0]


COMPONENT = ComponentSpec(
    name="nf-after-shield",
    kind="generator",
    description="muons at the end of the shield from a structured normalising flow (cm, GeV/c; exact weights)",
    parameters=(
        Parameter("weights", "path", str(BUNDLED_WEIGHTS), "flow weights (.safetensors, JSON config beside)"),
        Parameter("latent_sigma", "float", 1.0,
                  "latent sigma: 1 = inclusive; 1.3 / 1.6 enrich P1 / P2 (bundled flow); with p1_source "
                  "nf-decay-vessel the latent is nested: 0.2 / 0.1 make mostly P1 / P2 muons (weights exact)",
                  minimum=0.05),
        Parameter("backend", "choice", "torch", "inference engine", choices=("torch", "onnxruntime")),
        Parameter("geometry", "path", str(DEFAULT_GEOMETRY), "geometry whose decay vessel defines the counted subsets"),
        Parameter("muons_per_pot", "float", 0.0,
                  "muons at the shield end per proton on target (0: from flow-target's, unknown for the bundled one)",
                  minimum=0.0),
        Parameter("p1_source", "choice", "inclusive",
                  "where the muons that enter the decay vessel (P1) come from: this flow, or nf-decay-vessel's flow "
                  "of P1 muons alone, for the P1 fraction of its training transport (at latent_sigma 1)",
                  choices=P1_SOURCES),
        Parameter("p1_weights", "path", str(DECAY_VESSEL_WEIGHTS),
                  "nf-decay-vessel weights used when p1_source is nf-decay-vessel"),
        Parameter("p1_share", "float", 0.0,
                  "with p1_source nf-decay-vessel, the share of the generated muons drawn from it: 0 = its P1 "
                  "fraction, weights 1; larger enriches P1 with exact weights; 1 = decay-vessel muons only",
                  minimum=0.0),
    ),
    normalisation=_normalisation,
    check=_check,
)

SUBSET_FILTER = ComponentSpec(
    name="decay-vessel-subset",
    kind="filter",
    description="keeps the muons whose straight track enters the decay vessel (P1) or crosses it (P2)",
    parameters=(
        Parameter("subset", "choice", "P1", "subset kept", choices=("P1", "P2")),
        Parameter("geometry", "path", str(DEFAULT_GEOMETRY), "geometry with the decay_vessel section"),
    ),
)


def _with_defaults(stage: Stage, spec: ComponentSpec) -> Stage:
    """The stage with ``spec``'s defaults under its parameters (same cache)."""
    return Stage(stage.kind, stage.component, spec.defaults() | stage.params, stage.device, stage.index, stage.cache)


def _vessel(stage: Stage):
    from shipfastsim.geometry import load_geometry
    from shipfastsim.geometry.decay_vessel import DecayVessel

    return stage.cached("vessel", lambda: DecayVessel.from_geometry(load_geometry(stage.params["geometry"])))


def subset_counters(labels: torch.Tensor, weight: torch.Tensor) -> dict[str, float]:
    """Counts, sums of weights and of squared weights of all muons and of P1, P2."""
    out: dict[str, float] = {}
    for k, name in enumerate(("P0", "P1", "P2")):
        w = weight[labels >= k]
        out |= {f"{_PREFIX}{name}:n": int(len(w)), f"{_PREFIX}{name}:sum_w": float(w.sum()),
                f"{_PREFIX}{name}:sum_w2": float((w * w).sum())}
    return out


def _build(stage: Stage):
    """The inference engine: on the CPU `fast.cpu_engine` (for affine couplings
    `FastNoiseToMuon`, the output of `NoiseToMuon`, several times faster, on as many
    threads as torch's intra-op count), else the module itself."""
    from shipfastsim.plugins.nf_after_shield.model import NoiseToMuon, load_flow

    # the composite model's latent sigma acts on its nested latent (`nested`), not on this flow
    sigma = stage.params["latent_sigma"] if stage.params["p1_source"] == "inclusive" else 1.0
    module = NoiseToMuon(load_flow(stage.params["weights"], stage.device), sigma).eval()
    z_plane, bounds = module.flow.config.z_plane, envelope(module.flow)
    if stage.params["backend"] == "onnxruntime":
        from shipfastsim.adapters.onnx_runtime import OnnxRuntimeModule

        return OnnxRuntimeModule(_describe(module, stage.params["weights"])), z_plane, bounds
    if stage.device.type == "cpu":
        from shipfastsim.plugins.nf_after_shield.fast import cpu_engine

        return cpu_engine(module.flow, module.sigma), z_plane, bounds
    return module, z_plane, bounds


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [COMPONENT, SUBSET_FILTER, DECAY_VESSEL]


@hookimpl
def shipfastsim_generate_muons(stage: Stage, n_muons: int, context: ChunkContext) -> MuonBatch | None:
    if stage.component == DECAY_VESSEL.name:
        from shipfastsim.plugins.nf_after_shield import decay_vessel

        return decay_vessel.generate(_with_defaults(stage, DECAY_VESSEL), n_muons, context)
    if stage.component != COMPONENT.name:
        return None
    stage = _with_defaults(stage, COMPONENT)
    engine, z_plane, bounds = stage.cached("model", lambda: _build(stage))

    def make(n: int) -> torch.Tensor:
        return run_engine(engine, draw_noise(n, context.generator).to(stage.device))

    def outside(rows: torch.Tensor) -> torch.Tensor:
        return outside_envelope(rows, *bounds)

    # Muons outside the range of the transported training sample are redrawn: the flow
    # restricted to that range, exactly (at latent_sigma != 1 the weights' normalisation then
    # moves by the difference of the two outside fractions, about 10^-4).
    if stage.params["p1_source"] == "nf-decay-vessel":
        out = _with_decay_vessel_muons(stage, make, outside, z_plane, n_muons, context)
    else:
        from shipfastsim.plugins.gan_target import redraw_rejected

        out = redraw_rejected(make(n_muons), make, outside, what="outside the transported range")
    batch = muons_from_output(out, context.first_muon, stage.device, z_plane)
    from shipfastsim.geometry.decay_vessel import subset_labels

    context.counters.update(subset_counters(subset_labels(batch, _vessel(stage)), batch.weight))
    return batch


def _with_decay_vessel_muons(stage: Stage, make, outside, z_plane: float, n_muons: int, context: ChunkContext
                             ) -> torch.Tensor:
    """Rows of the composite model of ``p1_source: nf-decay-vessel``: each muon is, with
    probability p_1 (the P1 fraction of nf-decay-vessel's training transport), a muon of
    nf-decay-vessel, and otherwise a muon of this flow outside P1 (this flow's own P1 muons
    redrawn: its distribution restricted to the rest, exactly).  The P1 fraction is then p_1,
    and the P1 muons have the specialist's fidelity.

    The component is the composite's structured latent: ``p1_share`` q > 0 draws the
    specialist with probability q instead, and the exact weights p_1 / q and
    (1 - p_1) / (1 - q) restore the inclusive totals; q = 1 makes decay-vessel muons only,
    each of weight p_1, without running this flow.  Weights are 1 for q = 0 (q = p_1).
    ``latent_sigma`` != 1 draws the component and the specialist's P2 flag through the
    nested latent instead (`nested`: its radius picks the subset), with the exact weights
    averaged over each region."""
    import torch

    from shipfastsim.plugins.gan_target import redraw_rejected
    from shipfastsim.plugins.nf_after_shield import decay_vessel

    vessel = _vessel(stage)
    params = DECAY_VESSEL.defaults() | {"weights": stage.params["p1_weights"], "geometry": stage.params["geometry"]}
    specialist = Stage("generator", DECAY_VESSEL.name, params, stage.device, stage.index,
                       stage.cached("p1_source", dict))
    p1 = stage.cached("p1_fraction", lambda: transported_rate(params["weights"])[1]["p1_fraction"])
    share = float(stage.params["p1_share"]) or p1
    sigma = float(stage.params["latent_sigma"])
    nested = None
    if sigma != 1.0:
        from shipfastsim.plugins.nf_after_shield.nested import NestedLatent

        nested = stage.cached("nested", lambda: NestedLatent(p1, decay_vessel.p2_shares(specialist)))
    p2_drawn = nested.p2_probability_in_p1(sigma) if nested is not None else None

    def specialist_rows(n: int) -> torch.Tensor:
        rows, plane = decay_vessel.sample_output(specialist, n, context, p2_drawn)
        if abs(plane - z_plane) > 1e-6:
            raise ValueError(f"{params['weights']}: its muons are at z = {plane} cm, this flow's at {z_plane} cm")
        return rows

    def in_p1(rows: torch.Tensor) -> torch.Tensor:
        z = torch.full_like(rows[:, 0], z_plane)
        return vessel.labels(rows[:, 0], rows[:, 1], z, rows[:, 3], rows[:, 4], rows[:, 5]).to(rows.device) >= 1

    def outside_p1(n: int) -> torch.Tensor:  # float64: the specialist's muons sit inside the aperture to its rounding
        return redraw_rejected(make(n).double(), make, lambda rows: in_p1(rows) | outside(rows),
                               what="in P1 or outside the transported range")

    if nested is not None:  # the nested latent: its radius picks the component first
        chosen = nested.draw_p1(n_muons, sigma, context.generator).to(stage.device)
        out = torch.empty(n_muons, 8, dtype=torch.float64, device=stage.device)
        for rows, fill in ((~chosen, outside_p1), (chosen, specialist_rows)):
            if bool(rows.any()):
                out[rows] = fill(int(rows.sum()))
        inside, outside = nested.weights(sigma)
    elif share >= 1.0:
        out = specialist_rows(n_muons)
        out[:, 7] = p1
        return out
    else:
        out = outside_p1(n_muons)
        chosen = (torch.rand(n_muons, generator=context.generator, device=context.generator.device) < share
                  ).to(out.device)
        if bool(chosen.any()):
            out[chosen] = specialist_rows(int(chosen.sum()))  # out is this chunk's own tensor
        if share == p1:
            return out  # the composite itself: weights 1
        inside, outside = p1 / share, (1.0 - p1) / (1.0 - share)
    # the specialist's rows keep their own weight (1, or the nested latent's P2 weight) times inside
    out[:, 7] = torch.where(chosen, out[:, 7] * inside, out.new_tensor(outside))
    return out


@hookimpl
def shipfastsim_filter_muons(stage: Stage, batch: MuonBatch, context: ChunkContext) -> FilterDecision | None:
    if stage.component != SUBSET_FILTER.name:
        return None
    from shipfastsim.geometry.decay_vessel import subset_labels

    stage = _with_defaults(stage, SUBSET_FILTER)
    depth = 1 if stage.params["subset"] == "P1" else 2
    return FilterDecision(keep=subset_labels(batch, _vessel(stage)) >= depth)


def format_report(counters: dict[str, float]) -> str | None:
    """Enrichment and effective sample size from the stage's counters (None if absent)."""
    if f"{_PREFIX}P0:n" not in counters:
        return None
    n0 = counters[f"{_PREFIX}P0:n"]
    lines = ["nf-after-shield: subsets of the generated muons (straight tracks from the shield end)",
             f"{'subset':<7}{'muons':>11}{'fraction':>11}{'weighted':>11}{'enrichment':>12}{'ESS':>13}"
             f"{'ESS/muon':>10}"]
    for name in ("P0", "P1", "P2"):
        n, sw, sw2 = (counters.get(f"{_PREFIX}{name}:{k}", 0.0) for k in ("n", "sum_w", "sum_w2"))
        fraction, weighted = n / max(n0, 1), sw / max(n0, 1)
        enrichment = fraction / weighted if weighted else float("nan")
        ess = sw * sw / sw2 if sw2 else 0.0
        lines.append(f"{name:<7}{int(n):>11}{fraction:>11.4g}{weighted:>11.4g}{enrichment:>12.3f}{ess:>13.1f}"
                     f"{ess / max(n, 1):>10.3f}")
    lines.append("fraction: per generated muon; weighted: sum of weights per generated muon, the inclusive "
                 "model's fraction (weights average 1 over it); enrichment = fraction / weighted (1 in inclusive "
                 "mode); ESS = (sum w)^2 / sum w^2")
    return "\n".join(lines)


@hookimpl
def shipfastsim_report_run(summary: dict) -> str | None:
    return format_report(summary.get("counters", {}))


def _describe(module, weights: str | Path) -> ExportDescription:
    import torch

    if module.flow.config.coupling != "affine":
        raise ValueError(f"{weights}: ONNX export takes flows of affine couplings; this one has "
                         f"{module.flow.config.coupling} couplings")

    example = torch.cat([torch.randn(4, 5), torch.rand(4, 1)], dim=1)
    return ExportDescription(
        module=module.cpu().eval(),
        input_names=("noise",),
        output_names=("muon",),
        example_inputs=(example,),
        units={"noise": "[n, 6]: 5 standard normals (latent), then one uniform in [0, 1) (charge)",
               "muon": "[n, 8]: x, y, z [cm, FairShip frame, z = shield end], px, py, pz [GeV/c], PDG id (+-13), "
                       f"importance weight (latent sigma {module.sigma:g})"},
        version="nf-after-shield-1",
        weights_path=str(weights),
        floors={"muon": _floors(module.flow)},
    )


def _floors(flow) -> tuple[float | tuple[int, ...], ...]:
    """Agreement floors of the output columns (see `ExportDescription.floors`).

    x, y leave the inverse Gaussianising map (a0 + b g + sum c relu(g - k), after the
    affine un-whitening) and reach 0 only by cancellation of terms of the size of the
    map's inner range: floor = half the distance between its g = -3 and g = +3 knots
    [cm] (about 400 cm for x, 290 cm for y).  px, py are tx pz and ty pz, with tx, ty from
    the same kind of map (inner range ~0.2-0.3): floor pz of the row, column 5 (looser
    than 0.3 pz by about 3).  z (a constant), pz (an Exp), the PDG id and the weight (an
    Exp) are pure relative.
    """
    knots = flow.knots_f.double()
    half = [float((knots[j, -2] - knots[j, 1]) / 2) for j in (0, 1)]
    return (half[0], half[1], 0.0, (5,), (5,), 0.0, 0.0, 0.0)


@hookimpl
def shipfastsim_export_description(component: str, params: dict) -> ExportDescription | None:
    if component != COMPONENT.name:
        return None
    from shipfastsim.plugins.nf_after_shield.model import NoiseToMuon, load_flow

    params = COMPONENT.defaults() | dict(params or {})
    if params["p1_source"] != "inclusive":
        # the graph would be this flow alone, not the model the parameters describe
        raise ValueError(f"the composite model (p1_source {params['p1_source']}) has no ONNX graph: its P1 muons "
                         "come from a spline flow, drawn by component; export this flow with p1_source inclusive")
    module = NoiseToMuon(load_flow(params["weights"]), params["latent_sigma"])
    return _describe(module, params["weights"])
