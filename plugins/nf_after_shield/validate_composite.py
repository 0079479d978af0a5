"""Fidelity of the composite model's samples (inclusive and through the nested latent) against transported truth.

The composite model is ``nf-after-shield`` with ``p1_source: nf-decay-vessel``; its nested
latent (`nested`) at ``latent_sigma`` sigma_1 concentrates the muons on P1, at sigma_2 on P2,
with exact weights.  Each sample comes from the generator stage itself (the plugin hook, as a
production run calls it) and is labelled with the geometric rule (`DecayVessel.labels`).
Truths, none of them trained on, beside the bundled models of the default geometry: the P1
and P2 muons of the holdout splits (``holdout_decay_vessel.npz``; TRY_2025: 13,955 / 2,538)
and of further transport runs (``independent_decay_vessel.npz``; TRY_2025: 53,375 / 9,736),
and for all muons the 60,000 random rows of ``holdout_shield_end.npz``.  Metrics as in
`validate.fidelity` (W1/sigma per feature, the boosted-trees AUC, weighted candidates).

    python -m shipfastsim.plugins.nf_after_shield.validate_composite [--seeds 8 9] [--plot PNG] [--models DIR]

``--models`` is a directory of bundled models with their truths (default: the default
geometry's, e.g. ``plugins/nf_after_shield/try2025`` for TRY_2025's).

prints one table per generation seed (docs/physics/nf-after-shield.md gives seeds 8-11) and, with
``--plot``, the histograms of the first seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipfastsim.plugins.nf_after_shield.decay_vessel import HOLDOUT, INDEPENDENT
from shipfastsim.plugins.nf_after_shield.nested import NESTED_SIGMAS
from shipfastsim.plugins.nf_after_shield.validate import FidelityRow, GeneratedSample, fidelity, format_fidelity

__all__ = ["SHIELD_END_HOLDOUT", "model_set_params", "composite_sample", "load_truths", "composite_fidelity",
           "plot_composite", "holdout_p2_deviation"]

SHIELD_END_HOLDOUT = HOLDOUT.parent / "holdout_shield_end.npz"


def _models_dir(models: str | Path | None) -> Path:
    """The directory of a model set and its truths (None: the bundled one of the default geometry)."""
    return Path(models) if models else HOLDOUT.parent


def model_set_params(models: str | Path | None = None) -> dict[str, Any]:
    """The composite model's parameters for the models in directory ``models`` (default: the
    bundled ones of the default geometry): both flows' weights and the geometry that their
    JSON records (a file of ``configs/geometry``)."""
    from shipfastsim.configs import GEOMETRY_DIR
    from shipfastsim.plugins.nf_after_shield import COMPONENT
    from shipfastsim.provenance import read_provenance

    directory = _models_dir(models)
    weights = directory / "nf_after_shield.safetensors"
    record = read_provenance(weights)
    if not record or not record.get("geometry"):
        raise ValueError(f"{weights} records no training geometry")
    return COMPONENT.defaults() | {"weights": str(weights),
                                   "p1_weights": str(directory / "nf_decay_vessel.safetensors"),
                                   "geometry": str(GEOMETRY_DIR / record["geometry"]["file"])}


def composite_sample(n: int, seed: int, sigma: float, models: str | Path | None = None) -> GeneratedSample:
    """``n`` muons of the composite model (of the models in directory ``models``, default the
    bundled ones) at latent ``sigma`` from the generator hook, with their weights and
    geometric labels."""
    from shipfastsim.components import ChunkContext, Stage
    from shipfastsim.geometry.decay_vessel import subset_labels
    from shipfastsim.plugins.nf_after_shield import COMPONENT, _vessel
    from shipfastsim.registry import get_registry

    params = model_set_params(models) | {"p1_source": "nf-decay-vessel", "latent_sigma": sigma}
    stage = Stage("generator", COMPONENT.name, params, torch.device("cpu"))
    context = ChunkContext(chunk_index=0, first_muon=0, generator=torch.Generator().manual_seed(seed),
                           device=torch.device("cpu"))
    batch = get_registry().hook.shipfastsim_generate_muons(stage=stage, n_muons=n, context=context)
    state = torch.stack([batch.x, batch.y, batch.px, batch.py, batch.pz, batch.charge], 1)
    return GeneratedSample(state.numpy(), batch.weight.numpy(), subset_labels(batch, _vessel(stage)).numpy())


def load_truths(models: str | Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(state [n, 6], label) of the P1 truths ("holdout", "independent") and of the random
    shield-end rows ("all muons": label of each row), beside the models in directory
    ``models`` (default: the bundled ones)."""
    directory = _models_dir(models)
    truths = {}
    for name, path in (("holdout", HOLDOUT), ("independent", INDEPENDENT)):
        with np.load(directory / path.name, allow_pickle=False) as f:
            truths[name] = (f["state"].astype(np.float64), f["label"])
    with np.load(directory / SHIELD_END_HOLDOUT.name, allow_pickle=False) as f:
        random = f["random"]
        truths["all muons"] = (f["state"][random].astype(np.float64), f["label"][random])
    return truths


def composite_fidelity(seed: int, truths: dict[str, tuple[np.ndarray, np.ndarray]], n_sigma_1: int = 90_000,
                       n_sigma_2: int = 60_000, models: str | Path | None = None
                       ) -> tuple[list[FidelityRow], dict[float, GeneratedSample]]:
    """Rows: P1 and P2 of the sigma_1 sample and P2 of the sigma_2 sample against both P1
    truths, and the whole sigma_1 sample and an inclusive (sigma 1) one against the random
    shield-end rows; all weighted.  With the samples, by sigma."""
    sigma_1, sigma_2 = NESTED_SIGMAS
    samples = {1.0: composite_sample(n_sigma_1, seed, 1.0, models),
               sigma_1: composite_sample(n_sigma_1, seed, sigma_1, models),
               sigma_2: composite_sample(n_sigma_2, seed, sigma_2, models)}
    rows = []
    for sigma, depth in ((sigma_1, 1), (sigma_1, 2), (sigma_2, 2)):
        s = samples[sigma]
        member = s.label >= depth
        for name in ("holdout", "independent"):
            state, label = truths[name]
            rows.append(fidelity(state[label >= depth], s.state[member], s.weight[member], f"P{depth}",
                                 f"sigma {sigma:g} / {name}", seed=1))
    state, _ = truths["all muons"]
    for sigma in (1.0, sigma_1):
        s = samples[sigma]
        rows.append(fidelity(state, s.state, s.weight, "P0", f"sigma {sigma:g} / holdout", seed=1))
    return rows, samples


def plot_composite(samples: dict[float, GeneratedSample], truths: dict[str, tuple[np.ndarray, np.ndarray]],
                   path) -> None:
    """Histograms per subset: all muons (random holdout rows) against the inclusive composite;
    P1 and P2 (independent truth) against the sigma_1 and sigma_2 samples, weighted."""
    from shipfastsim.plugins.nf_after_shield.validate import plot_rows

    sigma_1, sigma_2 = NESTED_SIGMAS
    everything, _ = truths["all muons"]
    state, label = truths["independent"]
    rows = [("P0", everything, f"holdout ({len(everything)})", [(samples[1.0].state, None, "sigma 1", "C0")])]
    for depth, sigma in ((1, sigma_1), (2, sigma_2)):
        s = samples[sigma]
        member = s.label >= depth
        truth = state[label >= depth]
        rows.append((f"P{depth}", truth, f"independent runs ({len(truth)})",
                     [(s.state[member], s.weight[member], f"sigma {sigma:g}, weighted", "C3")]))
    plot_rows(rows, "nf-after-shield composite model (p1_source nf-decay-vessel) at the shield end: transported "
                    "truth vs its nested latent", path)


def holdout_p2_deviation(sample: GeneratedSample, truths: dict[str, tuple[np.ndarray, np.ndarray]],
                         feature: int = 1, subsets: int = 200, seed: int = 0) -> dict[str, float]:
    """How far W1/sigma of one feature (default y) on the held-out P2 muons is statistics:
    the holdout against the independent P2 truth, random subsets of the independent truth of
    the holdout's size against the whole of it and against the weighted P2 muons of
    ``sample`` (medians and 95 % quantiles over ``subsets``)."""
    from shipfastsim.validation.metrics import wasserstein1

    def w1(truth: np.ndarray, other: np.ndarray, weight: np.ndarray | None = None) -> float:
        return wasserstein1(truth[:, feature], other[:, feature], None, weight) / truth[:, feature].std()

    independent = truths["independent"][0][truths["independent"][1] >= 2]
    held_out = truths["holdout"][0][truths["holdout"][1] >= 2]
    member = sample.label >= 2
    model, weight = sample.state[member], sample.weight[member]
    rng = np.random.default_rng(seed)
    picks = [independent[rng.choice(len(independent), len(held_out), replace=False)] for _ in range(subsets)]
    noise = [w1(p, independent) for p in picks]
    against_model = [w1(p, model, weight) for p in picks]
    return {"holdout vs independent": w1(held_out, independent),
            "subset vs independent, median": float(np.median(noise)),
            "subset vs independent, 95 %": float(np.quantile(noise, 0.95)),
            "model vs subset, median": float(np.median(against_model)),
            "model vs subset, 95 %": float(np.quantile(against_model, 0.95)),
            "model vs holdout": w1(held_out, model, weight), "model vs independent": w1(independent, model, weight)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[8], help="generation seeds (default 8)")
    parser.add_argument("--plot", default=None, help="PNG of the first seed's histograms")
    parser.add_argument("--models", default=None, type=Path,
                        help="directory of the models and their truths (default: the bundled models of the default "
                             "geometry; plugins/nf_after_shield/try2025 for TRY_2025's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    truths = load_truths(args.models)
    for k, seed in enumerate(args.seeds):
        rows, samples = composite_fidelity(seed, truths, models=args.models)
        print(f"seed {seed}: the composite model's samples, weighted, against transported truth")
        print(format_fidelity(rows))
        if k == 0 and args.plot:
            plot_composite(samples, truths, args.plot)
        if k == 0:
            deviation = holdout_p2_deviation(samples[NESTED_SIGMAS[1]], truths)
            print(f"W1/sigma of y, held-out P2 muons (sigma {NESTED_SIGMAS[1]:g} sample, 200 subsets of the "
                  "independent truth of the holdout's size): "
                  + ", ".join(f"{name} {value:.3f}" for name, value in deviation.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
