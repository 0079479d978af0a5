"""Step 3 of ``shipfastsim train chain``: each trained model against held-out truth, with the gates.

The truth of each model is the holdout of its own trainer's split of the chain's sample,
which that model never trained or selected on:

* ``nf-after-shield``: the fidelity rows its trainer computed on the holdout
  (`nf_after_shield.cli.validation_report`, kept in the model's JSON): P0 from the
  inclusive model, P1 and P2 from the model sampled at their latent sigma with its
  weights, each with its floor (training truth against the holdout: what the holdout's
  size allows) in the detail; and the P1 and P2 fractions of the inclusive model against
  the holdout's;
* ``nf-decay-vessel``: muons drawn from the trained generator (its `sample_output`),
  against the holdout P1 rows its trainer set aside and never trained on (``holdout_decay_vessel.npz``), for
  P1 and, among them, P2 (`validate.fidelity`); and its P2 share against the holdout's;
* ``mlp-filter``: on its holdout split (model JSON): the recall at the working point
  against the target recall, and the calibrated P1 total against the observed one.

Gates (docs/physics/index.md): the boosted-trees two-sample AUC below `AUC_GATE` and
W1/sigma below `W1_GATE` for every feature; a rate within `PULL_GATE` standard errors
(binomial, or Poisson for a total; the phi copies of one muon are counted as independent,
which understates the errors).  Written as ``report.json`` and ``report.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shipfastsim.plugins.train_chain.steps import ChainSettings

__all__ = ["AUC_GATE", "W1_GATE", "PULL_GATE", "fraction_pull", "fidelity_gates", "nf_after_shield_gates",
           "nf_decay_vessel_gates", "mlp_filter_gates", "write_report"]

AUC_GATE = 0.55
W1_GATE = 0.05
PULL_GATE = 2.0


def _gate(name: str, value: float, limit: float, passed: bool, detail: str = "") -> dict[str, Any]:
    return {"gate": name, "value": float(value), "limit": float(limit), "passed": bool(passed), "detail": detail}


def fraction_pull(k_candidate: float, n_candidate: float, k_truth: float, n_truth: float) -> float:
    """(candidate fraction - truth fraction) / their binomial standard error combined; NaN
    (a failed gate) when either side is empty."""
    if n_candidate <= 0 or n_truth <= 0:
        return math.nan
    f, g = k_candidate / n_candidate, k_truth / n_truth
    variance = f * (1 - f) / n_candidate + g * (1 - g) / n_truth
    return (f - g) / math.sqrt(variance) if variance > 0 else (0.0 if f == g else math.inf)


def fidelity_gates(row: dict[str, Any]) -> list[dict[str, Any]]:
    """AUC and worst-feature W1/sigma gates of one fidelity row (`validate.FidelityRow` as a dict)."""
    feature, worst = max(row["w1_over_sigma"].items(), key=lambda item: item[1])
    where = f"{row['subset']}, {row['candidate']}, {row['n_truth']} truth / {row['n_candidate']} candidate"
    return [_gate(f"{row['subset']} GBT AUC", row["gbt_auc"], AUC_GATE, row["gbt_auc"] < AUC_GATE, where),
            _gate(f"{row['subset']} W1/sigma max ({feature})", worst, W1_GATE, worst < W1_GATE, where)]


def nf_after_shield_gates(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """Gates of nf-after-shield from the holdout validation in its JSON (module docstring)."""
    report = metadata["validation"]
    gates = []
    for subset in ("P0", "P1", "P2"):
        rows = [r for r in report["fidelity"] if r["subset"] == subset and "floor" not in r["candidate"]]
        floor = [r for r in report["fidelity"] if r["subset"] == subset and "floor" in r["candidate"]]
        if rows:  # the sigma_k sample (last) where the model has one, else the inclusive
            found = fidelity_gates(rows[-1])
            # The floor (training truth against the holdout) says what the holdout's size allows.
            for gate, floor_gate in zip(found, fidelity_gates(floor[0]) if floor else [], strict=False):
                gate["detail"] += f"; floor (training truth) {floor_gate['value']:.4g}"
            gates += found
    holdout = report["holdout_rows_P0_P1_P2"]
    inclusive = {r["subset"]: r["inclusive_fraction"] for r in report["enrichment"] if r["sigma"] == 1.0}
    n = report["generated"]
    for k, subset in ((1, "P1"), (2, "P2")):
        pull = fraction_pull(inclusive[subset] * n, n, holdout[k], holdout[0])
        gates.append(_gate(f"{subset} fraction pull", pull, PULL_GATE, abs(pull) < PULL_GATE,
                           f"model {inclusive[subset]:.4g} of {n}, holdout {holdout[k] / holdout[0]:.4g} "
                           f"of {holdout[0]}"))
    return gates


def nf_decay_vessel_gates(weights: Path, geometry: str, n_generate: int | None = None, seed: int = 0,
                          truth_file: Path | None = None) -> list[dict[str, Any]]:
    """Gates of nf-decay-vessel: its muons against the holdout P1 rows beside ``weights``, or
    against the P1 rows (``state``, ``label``) of ``truth_file``, e.g. an independent sample's."""
    import torch

    from shipfastsim.components import ChunkContext
    from shipfastsim.geometry import load_geometry
    from shipfastsim.geometry.decay_vessel import DecayVessel
    from shipfastsim.plugins.nf_after_shield.decay_vessel import HOLDOUT, sample_output
    from shipfastsim.plugins.nf_after_shield.validate import fidelity
    from shipfastsim.stage_params import make_stage

    with np.load(truth_file or weights.parent / HOLDOUT.name) as holdout:
        truth, truth_label = holdout["state"].astype(np.float64), holdout["label"]
    stage = make_stage("generator", "nf-decay-vessel", {"weights": str(weights), "geometry": geometry})
    n = n_generate or max(4 * len(truth), 20_000)
    try:
        out, _ = sample_output(stage, n, ChunkContext(0, 0, torch.Generator().manual_seed(seed), torch.device("cpu")))
    except RuntimeError as error:  # a model too poor to draw its own subsets fails, and the report says why
        return [_gate("drawing P1 and P2 muons", math.nan, 0.0, False, str(error))]
    label = DecayVessel.from_geometry(load_geometry(geometry)).labels(*out[:, :6].T).numpy()
    candidate = torch.cat([out[:, [0, 1, 3, 4, 5]], -out[:, 6:7] / 13.0], 1).numpy()
    weight = out[:, 7].numpy()
    gates = []
    for k, subset in ((1, "P1"), (2, "P2")):
        t, c = truth_label >= k, label >= k
        if t.sum() >= 10 and c.sum() >= 10:
            row = fidelity(truth[t], candidate[c], weight[c], subset, "nf-decay-vessel", seed)
            gates += fidelity_gates(row.__dict__)
    p2_model = float(weight[label >= 2].sum() / weight.sum())
    pull = fraction_pull(p2_model * n, n, float((truth_label >= 2).sum()), len(truth_label))
    gates.append(_gate("P2 share of P1 pull", pull, PULL_GATE, abs(pull) < PULL_GATE,
                       f"model {p2_model:.4g} of {n}, holdout {(truth_label >= 2).mean():.4g} of {len(truth_label)}"))
    return gates


def mlp_filter_gates(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """Gates of mlp-filter from the holdout figures in its JSON (module docstring)."""
    figures, target = metadata["figures"]["holdout"], metadata["working_point"]["recall"]
    n = figures["dangerous"]
    error = math.sqrt(target * (1 - target) / n) if n else math.inf
    short = (target - figures["recall"]) / error if error > 0 else 0.0
    calibration = figures["calibration"]
    observed = calibration["observed_total"]
    pull = (calibration["predicted_total"] - observed) / math.sqrt(observed) if observed > 0 else math.inf
    return [_gate("holdout recall shortfall (sigma)", short, PULL_GATE, short < PULL_GATE,
                  f"recall {figures['recall']:.4f} of {n} {metadata['label']} muons, target {target}; reduction "
                  f"factor {figures['reduction']:.3g} (ideal {figures['ideal_reduction']:.3g})"),
            _gate(f"calibrated {metadata['label']} total pull", pull, PULL_GATE, abs(pull) < PULL_GATE,
                  f"predicted {calibration['predicted_total']:.1f}, observed {observed:.1f}")]


def _markdown(report: dict[str, Any]) -> str:
    sample = report["sample"]
    lines = [f"# train chain: {Path(sample['settings']['geometry']).name}, truth {sample['settings']['truth']}", "",
             f"Sample: {sample['recipe']}.  Copies {sample['counts']['copies']:,}, at the shield end "
             f"{sample['counts']['shield_end']:,}, P1 {sample['counts']['P1']:,}, P2 {sample['counts']['P2']:,} "
             f"({sample['seconds']:.0f} s on {sample['workers']} dask workers).", "",
             f"**All gates passed: {'yes' if report['passed'] else 'no'}**", ""]
    for name, model in report["models"].items():
        lines += [f"## {name}", "", f"weights `{model['weights']}`", "",
                  "| gate | value | limit | passed | detail |", "|---|---|---|---|---|"]
        lines += [f"| {g['gate']} | {g['value']:.4g} | {g['limit']:g} | {'yes' if g['passed'] else '**no**'} | "
                  f"{g['detail']} |" for g in model["gates"]]
        lines.append("")
    return "\n".join(lines)


def write_report(settings: ChainSettings, output: Path, sample_meta: dict[str, Any], directory: Path
                 ) -> dict[str, Any]:
    """Validate the three models of the chain in ``output``; write ``report.json`` and
    ``report.md`` to ``directory``."""
    def sidecar(folder: str, name: str) -> tuple[Path, dict[str, Any]]:
        weights = output / folder / f"{name}.safetensors"
        return weights, json.loads(weights.with_suffix(".json").read_text())

    models = {}
    weights, metadata = sidecar("nf-after-shield", "nf_after_shield")
    models["nf-after-shield"] = {"weights": str(weights), "gates": nf_after_shield_gates(metadata)}
    weights, _ = sidecar("nf-decay-vessel", "nf_decay_vessel")
    models["nf-decay-vessel"] = {"weights": str(weights),
                                 "gates": nf_decay_vessel_gates(weights, settings.sample.geometry,
                                                                seed=settings.sample.seed)}
    weights, metadata = sidecar("mlp-filter", "mlp_filter")
    models["mlp-filter"] = {"weights": str(weights), "gates": mlp_filter_gates(metadata)}
    for model in models.values():
        model["passed"] = all(g["passed"] for g in model["gates"])
    report = {"sample": sample_meta, "arguments": settings.record(), "models": models,
              "passed": all(m["passed"] for m in models.values())}
    (directory / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (directory / "report.md").write_text(_markdown(report) + "\n")
    return report
