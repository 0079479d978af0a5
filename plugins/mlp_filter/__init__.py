"""Filter ``mlp-filter``: keep the target muons that can reach the decay vessel.

Step (3b) of the SHiP fast-simulation plan: spend the transport only on muons that
can make background.  A small MLP (`model`) on the target kinematics gives the
calibrated probability that a muon reaches the label it was trained for (bundled: P1,
crossing the decay-vessel entrance inside its aperture; see `labels`).  The threshold
is set by a target ``recall`` on the validation split of the training sample
(`workpoint`), not written in the code.

Modes:

* ``unbiased`` (default): muons below the threshold are kept with probability
  ``keep_probability`` q and weight w / q (Russian roulette), so every weighted total
  after the filter is unbiased;
* ``cut``: muons below the threshold are dropped (the lost dangerous weight, about
  1 - recall, is then missing from every total).

The run report gives per filter stage the reduction factor (muons in / muons past
the threshold, and / muons out with the roulette survivors) and the estimated
fraction of dangerous weight that the cut alone would lose, from the calibrated
probabilities of this run's muons and from the validation recall.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipfastsim.components import ChunkContext, ComponentSpec, ExportDescription, FilterDecision, Parameter, Stage
from shipfastsim.configs import DEFAULT_MODEL_SET
from shipfastsim.hookspecs import hookimpl

__all__ = ["COMPONENT", "BUNDLED_WEIGHTS", "COUNTER_PREFIX", "working_threshold", "filter_report"]

#: The bundled classifier (label P1) for the default geometry (`DEFAULT_MODEL_SET`), its JSON sidecar beside it.
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / DEFAULT_MODEL_SET / "mlp_filter.safetensors"
#: Counter keys: ``mlp-filter/<stage index>/<what>``.
COUNTER_PREFIX = "mlp-filter"


def _check(params: dict[str, Any], run: dict[str, Any]) -> str | None:
    q, recall, confidence = params["keep_probability"], params["recall"], params["confidence"]
    if not 0.0 < q <= 1.0:
        return f"keep_probability: {q!r} is not allowed; allowed values: 0 < keep_probability <= 1"
    if not 0.0 < recall < 1.0:
        return f"recall: {recall!r} is not allowed; allowed values: 0 < recall < 1"
    if not 0.0 <= confidence < 1.0:
        return f"confidence: {confidence!r} is not allowed; allowed values: 0 <= confidence < 1"
    return None


COMPONENT = ComponentSpec(
    name="mlp-filter",
    kind="filter",
    description="MLP on target kinematics keeping muons likely to enter the decay vessel (unbiased Russian roulette)",
    parameters=(
        Parameter("weights", "path", str(BUNDLED_WEIGHTS), "classifier weights (.safetensors, JSON sidecar beside)"),
        Parameter("mode", "choice", "unbiased", "below threshold: roulette with weight w/q (unbiased) or drop (cut)",
                  choices=("unbiased", "cut")),
        Parameter("keep_probability", "float", 0.01, "q: chance a muon below threshold is kept (weight w/q)",
                  minimum=0.0),
        Parameter("recall", "float", 0.99, "target fraction of dangerous muons above threshold (validation)",
                  minimum=0.0),
        Parameter("confidence", "float", 0.9, "confidence of the recall lower bound setting the threshold (0: plain)",
                  minimum=0.0),
        Parameter("backend", "choice", "torch", "inference engine", choices=("torch", "onnxruntime")),
    ),
    check=_check,
)


def working_threshold(sidecar: dict, recall: float, confidence: float) -> float:
    """The threshold on the calibrated probability for a target recall (see `workpoint`)."""
    import numpy as np

    from shipfastsim.plugins.mlp_filter.workpoint import threshold_for_recall

    return threshold_for_recall(np.asarray(sidecar["validation_positive_scores"]), recall, confidence)


def _build(stage: Stage) -> tuple[Any, float]:
    from shipfastsim.config import ConfigError
    from shipfastsim.plugins.mlp_filter.model import load_filter, read_sidecar

    params = COMPONENT.defaults() | stage.params
    problem = _check(params, {})
    if problem:
        raise ConfigError(f"stages[{stage.index}].params", problem)
    net = load_filter(params["weights"], stage.device)
    threshold = working_threshold(read_sidecar(params["weights"]), params["recall"], params["confidence"])
    if params["backend"] == "onnxruntime":
        from shipfastsim.adapters.onnx_runtime import OnnxRuntimeModule

        return OnnxRuntimeModule(_describe(net, params["weights"])), threshold
    return net, threshold


@hookimpl
def shipfastsim_declare_components() -> list[ComponentSpec]:
    return [COMPONENT]


@hookimpl
def shipfastsim_filter_muons(stage: Stage, batch, context: ChunkContext) -> FilterDecision | None:
    if stage.component != COMPONENT.name:
        return None
    import torch

    from shipfastsim.plugins.gan_target import run_chunked
    from shipfastsim.plugins.mlp_filter.workpoint import roulette

    params = COMPONENT.defaults() | stage.params
    engine, threshold = stage.cached("model", lambda: _build(stage))
    state = torch.stack([batch.x, batch.y, batch.z, batch.px, batch.py, batch.pz, batch.charge], 1)
    with torch.inference_mode():
        log_odds = run_chunked(engine, state.to(torch.float32)).reshape(-1).to(batch.device, torch.float64)
    prob = torch.sigmoid(log_odds)
    passed = prob >= threshold
    q = params["keep_probability"]
    if params["mode"] == "cut":
        keep, weight = passed, None
    else:
        keep, weight = roulette(passed, batch.weight, q, context.generator)
    w = batch.weight
    key = f"{COUNTER_PREFIX}/{stage.index}/"
    context.counters.update({
        key + "chunks": 1, key + "threshold": threshold, key + "keep_probability": q if weight is not None else 0.0,
        key + "muons_in": len(batch), key + "muons_passed": int(passed.sum()), key + "muons_out": int(keep.sum()),
        key + "weight_in": float(w.sum()), key + "weight_passed": float(w[passed].sum()),
        # Calibrated probabilities: expected dangerous weight, in all and below the threshold.
        key + "dangerous_expected": float((w * prob).sum()),
        key + "dangerous_expected_below": float((w * prob)[~passed].sum()),
    })
    return FilterDecision(keep=keep, weight=weight)


def filter_report(counters: dict[str, float]) -> str | None:
    """The report section of every mlp-filter stage of a run, from its counters."""
    stages = sorted({key.split("/")[1] for key in counters if key.startswith(COUNTER_PREFIX + "/")}, key=int)
    lines = []
    for index in stages:
        c = {key.split("/")[2]: value for key, value in counters.items()
             if key.startswith(f"{COUNTER_PREFIX}/{index}/")}
        chunks = max(c.get("chunks", 1), 1)
        q = c["keep_probability"] / chunks
        passed, out = max(c["muons_passed"], 1), max(c["muons_out"], 1)
        lost = c["dangerous_expected_below"] / c["dangerous_expected"] if c["dangerous_expected"] > 0 else 0.0
        mode = f"unbiased, keep probability q = {q:.3g} below threshold" if q > 0 else "cut"
        lines += [f"mlp-filter (stage {index}, {mode}, threshold {c['threshold'] / chunks:.4g}):",
                  f"  muons in {int(c['muons_in']):,}, past the threshold {int(c['muons_passed']):,}, "
                  f"out {int(c['muons_out']):,}",
                  f"  reduction factor: {c['muons_in'] / passed:.1f} by the cut alone, "
                  f"{c['muons_in'] / out:.1f} with the roulette survivors",
                  f"  estimated fraction of dangerous weight the cut alone would lose: {lost:.4f} "
                  f"(calibrated probabilities of this run's muons)"]
    return "\n".join(lines) if lines else None


@hookimpl
def shipfastsim_report_run(summary: dict) -> str | None:
    return filter_report(summary.get("counters", {}))


def _describe(net, weights: str | Path) -> ExportDescription:
    import torch

    example = torch.tensor([[0.0, 0.0, 30.0, 0.5, -0.3, 80.0, 1.0], [1.0, -2.0, 60.0, -1.0, 0.2, 20.0, -1.0]])
    return ExportDescription(
        module=net.cpu().float().eval(),
        input_names=("muon",),
        output_names=("log_odds",),
        example_inputs=(example,),
        units={"muon": "[n, 7]: x, y, z [cm, FairShip frame], px, py, pz [GeV/c], charge [e] at production",
               "log_odds": "[n, 1]: calibrated log-odds that the muon reaches the trained label (P1); "
                           "probability = 1 / (1 + exp(-log_odds))"},
        version="mlp-filter-1",
        weights_path=str(weights),
        # The log-odds is a sum of the last layer's 64 terms and the Platt shift; for the bundled
        # filters the terms' absolute values add up to 25-330 (1st-99th percentile), so float32
        # sums in another order (onnxruntime, SOFIE) differ by up to ~2e-5 wherever the
        # log-odds is small by cancellation.  Compared absolutely below 10: a log-odds error of
        # 1e-4 is a relative error of at most 1e-4 on the keep probability.
        floors={"log_odds": (10.0,)},
    )


@hookimpl
def shipfastsim_export_description(component: str, params: dict) -> ExportDescription | None:
    if component != COMPONENT.name:
        return None
    from shipfastsim.plugins.mlp_filter.model import load_filter

    weights = (params or {}).get("weights", str(BUNDLED_WEIGHTS))
    return _describe(load_filter(weights, "cpu"), weights)
