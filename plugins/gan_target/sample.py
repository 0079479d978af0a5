"""The training sample of the target generators (``gan-target``, ``flow-target``) and their shared validation score.

`prepare_sample` reads the muon files once and returns everything both trainers need:
the network features of the train split (`model.physical_to_features`; the first
`N_MAPPED` Gaussianised by quantile maps fitted on the train split with prompt and
displaced muons weighted equally, the unit-vector columns raw), the class of each
muon, the class frequencies and the validation split's `MUON_FEATURES`.  The split is
the fixed 80/10/10 row-hash split (`shipfastsim.validation.split`); the holdout is
never read here.  `validation_score` is the model-selection score, on the validation
split only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from shipfastsim.plugins.gan_target.data import SPLITS, load_muons, split_codes
from shipfastsim.plugins.gan_target.model import (
    N_CLASSES,
    N_MAPPED,
    R_PROMPT,
    MappedFeatureModule,
    apply_quantile_map,
    class_of,
    fit_quantile_map,
    physical_to_features,
)
from shipfastsim.sample_weights import effective_sample_size, normalisation_from_weights, training_weights
from shipfastsim.validation.metrics import MUON_FEATURES, feature_arrays, wasserstein1
from shipfastsim.validation.two_sample import PHYSICS_FEATURES, gbt_auc

if TYPE_CHECKING:
    from shipfastsim.plugins.gan_target.transport_rates import RateSelection

__all__ = ["TargetSample", "rate_selection", "prepare_sample", "sample_metadata", "sample_provenance", "configure",
           "generate_features", "muon_features", "validation_score", "ModelSelection"]


@dataclass
class TargetSample:
    """Train-split features and classes, their statistics and maps, and the validation reference.

    ``weights`` and ``validation_weights`` are the muons' ``w`` as importance weights (train
    split scaled to mean 1), None for an unweighted sample (all ``w`` equal): every
    statistic here is then the unweighted one, exactly as before weights were honoured.
    ``total_weight`` is the sum of ``w`` over all muons of the files (every split): the
    muons per spill they stand for, which a declared POT turns into muons per POT.
    """

    features: np.ndarray  # [n_train, 8]: columns 0-3 Gaussianised, 4-7 unit-vector components (raw)
    classes: np.ndarray  # [n_train] int64 class 0-3 (`model.class_of`)
    mean: np.ndarray  # [8] train-split (weighted) mean of the unmapped features
    std: np.ndarray  # [8] train-split (weighted) standard deviation of the unmapped features
    maps: list[tuple[np.ndarray, np.ndarray]]  # N_MAPPED quantile maps (t, g)
    class_probabilities: np.ndarray  # [4]
    validation: np.ndarray  # [n_val, len(MUON_FEATURES)] validation split
    skipped_rows: int
    weights: np.ndarray | None = None  # [n_train] importance weights, mean 1; None: unweighted
    validation_weights: np.ndarray | None = None  # [n_val]; None: unweighted
    total_weight: float = 0.0  # sum of w over all muons of the files [muons per spill of their convention]


def _balance(prompt: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Per-row weights of the quantile-map fit: prompt and displaced muons with equal total weight."""
    if weights is None:
        return np.where(prompt, 0.5 / prompt.mean(), 0.5 / (1 - prompt.mean()))  # prompt : displaced = 1 : 1
    fraction = np.sum(weights * prompt) / np.sum(weights)
    return weights * np.where(prompt, 0.5 / fraction, 0.5 / (1 - fraction))


def prepare_sample(files: Sequence[str | Path], knots: int) -> TargetSample:
    """Read ``files`` and build the `TargetSample` (maps with ``knots`` knots), honouring the muons' ``w``."""
    muons, skipped = load_muons(files)
    cols = {k: v for k, v in muons.to_numpy().items() if k in ("x", "y", "z", "px", "py", "pz")}
    features = physical_to_features(**cols)
    radius = np.hypot(cols["x"], cols["y"])
    classes = class_of(muons.charge.numpy(), radius)
    code = split_codes(len(muons))
    is_train = code < SPLITS["train"][1]
    is_val = (code >= SPLITS["validation"][0]) & (code < SPLITS["validation"][1])
    raw_weights = muons.weight.numpy().astype(np.float64)
    weights = training_weights(raw_weights)
    train_weights = None if weights is None else training_weights(weights[is_train])
    if weights is not None and train_weights is None:  # weighted file whose train split happens to be uniform
        train_weights = np.ones(int(is_train.sum()))
    train = features[is_train]
    balance = _balance(radius[is_train] < R_PROMPT, train_weights)
    maps = [fit_quantile_map(train[:, j], balance, knots) for j in range(N_MAPPED)]
    mapped = train.copy()
    for j, (t, g) in enumerate(maps):
        mapped[:, j] = apply_quantile_map(mapped[:, j], t, g)
    if train_weights is None:
        mean, std = train.mean(0), train.std(0)
        class_probabilities = np.bincount(classes[is_train], minlength=N_CLASSES) / is_train.sum()
    else:
        mean = np.average(train, axis=0, weights=train_weights)
        std = np.sqrt(np.average((train - mean) ** 2, axis=0, weights=train_weights))
        class_probabilities = (np.bincount(classes[is_train], weights=train_weights, minlength=N_CLASSES)
                               / train_weights.sum())
    return TargetSample(mapped, classes[is_train], mean, std, maps, class_probabilities,
                        feature_arrays(muons.select(torch.as_tensor(is_val)), MUON_FEATURES)[0], skipped,
                        train_weights, None if weights is None else weights[is_val], float(raw_weights.sum()))


def sample_metadata(sample: TargetSample, files: Sequence[str | Path], spill_pot: float | None) -> dict:
    """What a trained model's JSON records about its training sample's weights and normalisation.

    ``normalisation`` is what `model_normalisation` gives a run of the model: with
    ``spill_pot`` (the protons on target per spill that the files' ``w`` refer to),
    muons_per_pot = sum(w) / spill_pot; without it, unknown (the run then warns).
    """
    names = [Path(f).name for f in files]
    if spill_pot is None:
        normalisation = {"muons_per_pot": None,
                         "source": f"trained on {', '.join(names)} without a declared POT per spill of its w "
                                   "(shipfastsim train --weights-spill-pot)"}
    else:
        declared = normalisation_from_weights(sample.total_weight, spill_pot, files)
        normalisation = {"muons_per_pot": declared.muons_per_pot, "source": declared.source,
                         "total_weight": sample.total_weight, "spill_pot": float(spill_pot)}
    n_train = len(sample.features)
    return {"normalisation": normalisation,
            "sample_weights": {"weighted": sample.weights is not None, "total_weight": sample.total_weight,
                               "train_muons": n_train,
                               "train_effective_size": effective_sample_size(sample.weights, n_train)}}


def sample_provenance(files: Sequence[str | Path], sample: TargetSample, seed: int) -> dict:
    """What a target generator learns from: the files (with digests), their valid rows (all
    splits; ``sample`` holds the training split) and the training seed."""
    from shipfastsim.provenance import file_digest, make_provenance

    rows = len(load_muons(files)[0])
    return make_provenance(geometry=None, truth=None, target_generator=None, sample_size=rows,
                           seed=seed, training_data=[{"file": Path(f).name, "digest": file_digest(f)} for f in files])


def configure(module: MappedFeatureModule, sample: TargetSample, standardise_directions: bool) -> None:
    """Copy the sample's maps, class edges and (with ``standardise_directions``) the unit-vector
    columns' mean and standard deviation into ``module``'s buffers (else 0 and 1)."""
    mean, std = sample.mean.copy(), sample.std.copy()
    if not standardise_directions:
        mean[N_MAPPED:], std[N_MAPPED:] = 0.0, 1.0
    module.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
    module.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))
    module.set_quantile_maps(sample.maps)
    module.class_edges.copy_(torch.as_tensor(np.cumsum(sample.class_probabilities)[:-1], dtype=torch.float32))


def rate_selection(files: Sequence[str | Path], config, generator: str) -> RateSelection | None:
    """The after-transport rate criterion of a trainer's ``config`` (its ``rate_*`` fields;
    None when ``rate_generated`` is 0): the truth measured now on ``files``."""
    if not config.rate_generated:
        return None
    from shipfastsim.plugins.gan_target.transport_rates import RateSelection

    return RateSelection.from_files(generator, [str(f) for f in files], config.rate_generated, config.rate_copies,
                                    config.rate_truth_copies, config.seed + 2, config.rate_label)


def generate_features(module: MappedFeatureModule, n: int, seed: int, device: torch.device | str = "cpu") -> np.ndarray:
    """``n`` muons ``[n, 7]`` (x, y, z, px, py, pz, pdg) from seeded noise (normals, then one uniform), as numpy."""
    gen = torch.Generator(device=device).manual_seed(seed)
    noise = torch.cat([torch.randn(n, module.noise_width - 1, generator=gen, device=device),
                       torch.rand(n, 1, generator=gen, device=device)], dim=1)
    with torch.inference_mode():
        return module.generate(noise).double().cpu().numpy()


def muon_features(state: np.ndarray) -> np.ndarray:
    """[n, 7] generator output to the `MUON_FEATURES` columns."""
    x, y, z, px, py, pz, pdg = state.T
    return np.stack([x, y, z, px, py, pz, np.sqrt(px**2 + py**2 + pz**2), np.hypot(px, py), -np.sign(pdg)], axis=1)


def validation_score(module: MappedFeatureModule, reference: np.ndarray, seed: int, n: int,
                     trees: bool, reference_weights: np.ndarray | None = None) -> tuple[float, dict[str, float], float]:
    """Score: (mean + max) / 2 of W1 / sigma over `MUON_FEATURES` (sigma of ``reference``) plus,
    with ``trees``, the excess over 0.5 of the boosted-trees AUC on `PHYSICS_FEATURES`; the
    per-feature W1 / sigma; that AUC (NaN without ``trees``).  ``reference_weights`` (None:
    unweighted) weight the reference in W1, sigma and the trees' fit and AUC."""
    fake = muon_features(generate_features(module, n, seed))
    if reference_weights is None:
        sigma = reference.std(0) + 1e-12
    else:
        mean = np.average(reference, axis=0, weights=reference_weights)
        sigma = np.sqrt(np.average((reference - mean) ** 2, axis=0, weights=reference_weights)) + 1e-12
    w1 = [float(wasserstein1(reference[:, j], fake[:, j], reference_weights) / sigma[j])
          for j in range(reference.shape[1])]
    score = float(0.5 * (np.mean(w1) + np.max(w1)))
    per_feature = dict(zip(MUON_FEATURES, w1, strict=True))
    if not trees:
        return score, per_feature, float("nan")
    subset = [MUON_FEATURES.index(name) for name in PHYSICS_FEATURES]
    auc = gbt_auc(reference[:, subset], fake[:, subset], reference_weights, seed=seed)
    return score + max(auc - 0.5, 0.0), per_feature, auc


@dataclass
class ModelSelection:
    """Early stopping and model selection on the validation split, shared by the trainers.

    `evaluate` scores a module (`validation_score`, plus with ``rates`` the penalty of its
    after-transport rate, `transport_rates.RateSelection`), appends to ``history`` and, when the
    score is the best so far, writes the module with ``save(module, weights_path, metadata)``
    (``metadata`` plus the step and its scores); `stop` is true after ``patience``
    evaluations without improvement or past ``max_minutes``; `finish` writes the whole
    history into the JSON sidecar of the best weights.
    """

    sample: TargetSample
    weights_path: Path
    save: Callable[[MappedFeatureModule, Path, dict], Path]
    metadata: dict
    seed: int
    n_generated: int
    trees: bool
    patience: int
    max_minutes: float
    best: float = float("inf")
    best_step: int = 0
    stale: int = 0
    last: float = float("nan")
    history: list[dict] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)
    rates: RateSelection | None = None

    def evaluate(self, step: int, module: MappedFeatureModule, device: str, losses: dict[str, float]) -> float:
        """Score ``module`` (moved to the CPU and back to ``device``) at ``step``; returns the score."""
        module = module.cpu()
        score, per_feature, auc = validation_score(module, self.sample.validation, self.seed, self.n_generated,
                                                   self.trees, self.sample.validation_weights)
        scores = {"val_score": score, "val_w1_over_sigma": per_feature, "val_gbt_auc_physics": auc}
        if self.rates is not None:
            rate = self.rates.measure(lambda path: self.save(module, path, self.metadata))
            penalty, ratio = self.rates.penalty(rate)
            scores |= {"val_distribution_score": score, "val_score": score + penalty, "val_transported_rate": {
                "label": rate.label, "rate": rate.rate, "error": rate.error, "truth": self.rates.truth.rate,
                "truth_error": self.rates.truth.error, "penalty": penalty} | ratio}
            score += penalty
        self.history.append({"step": step} | losses | scores | {"minutes": (time.monotonic() - self.start) / 60})
        if score < self.best:
            self.best, self.best_step, self.stale = score, step, 0
            self.save(module, self.weights_path, self.metadata | {"best_step": step} | scores)
        else:
            self.stale += 1
        module.to(device)
        self.last = score
        return score

    @property
    def stop(self) -> bool:
        return self.stale >= self.patience or (time.monotonic() - self.start) / 60 > self.max_minutes

    def finish(self, steps: int) -> None:
        if self.best_step:  # record the full history beside the best weights
            sidecar = self.weights_path.with_suffix(".json")
            document = json.loads(sidecar.read_text())
            document["history"], document["steps"] = self.history, steps
            sidecar.write_text(json.dumps(document, indent=1) + "\n")
