"""Two-sample metrics comparing a candidate sample (a surrogate's output) to a reference.

Every metric takes 2-D feature arrays (rows = muons, columns = features) with optional
per-row weights; `feature_arrays` turns a `MuonBatch`, a mapping of columns or an
array into that form.  `compare` computes them all, each beside its
*reference-vs-reference* value (two random halves of the reference) for scale, and
returns a `ValidationMetrics` dataclass:

* the effective sample size of each side, (sum w)^2 / sum w^2, beside its row count: the
  statistical weight of a weighted sample (FairShip productions, per-spill outputs);
* per feature: 1-Wasserstein distance divided by the reference's standard deviation
  (unitless), the Kolmogorov-Smirnov statistic and the boosted-trees AUC of that
  feature alone;
* classifier two-sample tests (`two_sample`): the boosted-trees AUC (the strong test)
  on all features and on the physics subset `PHYSICS_FEATURES`, and the small MLP's
  AUC on all features (0.5 = the samples cannot be told apart);
* FPD and KPD (arXiv:2211.10295) on features standardised by the reference's mean and
  standard deviation: FPD is the Frechet distance between Gaussians fitted to the two
  samples, computed at several sample sizes N and extrapolated linearly in 1/N to
  N = infinity; KPD is the unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, the median over batches.  Errors: the fit's standard error
  (FPD) and half the inter-quartile range (KPD).  Weighted samples enter FPD and KPD
  through resampling rows with probability proportional to their weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.linalg
import scipy.stats

from shipfastsim.batch import MuonBatch
from shipfastsim.sample_weights import effective_sample_size
from shipfastsim.validation.features import MUON_FEATURES, PHYSICS_FEATURES
from shipfastsim.validation.two_sample import (
    GBT_ITERATIONS,
    auc_null_sigma,
    classifier_auc,
    gbt_auc,
    gbt_feature_aucs,
    gbt_pair_aucs,
    unit_weights,
    weighted_auc,
)

__all__ = [
    "MUON_FEATURES", "PHYSICS_FEATURES", "FeatureMetric", "ValidationMetrics", "feature_arrays", "wasserstein1",
    "ks_statistic", "weighted_auc", "classifier_auc", "gbt_auc", "frechet_distance", "fpd", "kpd", "compare",
]



def feature_arrays(data: MuonBatch | Mapping[str, np.ndarray] | np.ndarray,
                   names: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """Return ``(X [n, d] float64, feature names, weights or None)``.

    A `MuonBatch` gives `MUON_FEATURES` (or ``names``) and its ``weight`` column (None
    when all weights are equal); a mapping gives its columns ``names`` (default: all
    keys); an array is taken as it is, with ``names`` or ``f0, f1, ...``.
    """
    if isinstance(data, MuonBatch):
        names = tuple(names or MUON_FEATURES)
        columns = np.stack([getattr(data, n).detach().cpu().double().numpy() for n in names], axis=1)
        weights = data.weight.detach().cpu().numpy()
        return columns, names, (None if np.all(weights == weights[:1]) else weights)
    if isinstance(data, Mapping):
        names = tuple(names or data.keys())
        return np.stack([np.asarray(data[n], dtype=np.float64) for n in names], axis=1), names, None
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    names = tuple(names or (f"f{i}" for i in range(array.shape[1])))
    return array, names, None


def wasserstein1(a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None, wb: np.ndarray | None = None) -> float:
    """1-Wasserstein distance between two 1-D (weighted) samples, in the samples' unit."""
    return float(scipy.stats.wasserstein_distance(a, b, wa, wb))


def ks_statistic(a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None, wb: np.ndarray | None = None) -> float:
    """Largest distance between the two (weighted) empirical CDFs."""
    wa, wb = unit_weights(wa, len(a)), unit_weights(wb, len(b))
    grid = np.concatenate([a, b])
    grid.sort()
    order_a, order_b = np.argsort(a), np.argsort(b)
    cdf_a = np.concatenate([[0.0], np.cumsum(wa[order_a])]) / wa.sum()
    cdf_b = np.concatenate([[0.0], np.cumsum(wb[order_b])]) / wb.sum()
    fa = cdf_a[np.searchsorted(a[order_a], grid, side="right")]
    fb = cdf_b[np.searchsorted(b[order_b], grid, side="right")]
    return float(np.max(np.abs(fa - fb)))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two samples [feature units^2]."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fpd(x: np.ndarray, y: np.ndarray, n_points: int = 8, repeats: int = 10, min_fraction: float = 0.2,
        seed: int = 0) -> tuple[float, float]:
    """Frechet physics distance extrapolated to infinite N; returns ``(value, error)``.

    The Frechet distance is averaged over ``repeats`` random subsamples of each size N
    in ``n_points`` sizes from ``min_fraction * n_max`` to ``n_max = min(len(x), len(y))``;
    a straight line in 1/N is fitted, its intercept and standard error returned.
    """
    rng = np.random.default_rng(seed)
    n_max = min(len(x), len(y))
    sizes = np.linspace(max(int(min_fraction * n_max), 2 * x.shape[1] + 2), n_max, n_points).astype(int)
    values = []
    for n in sizes:
        values.append(np.mean([frechet_distance(x[rng.choice(len(x), n, replace=False)],
                                                y[rng.choice(len(y), n, replace=False)]) for _ in range(repeats)]))
    design = np.stack([np.ones(len(sizes)), 1.0 / sizes], axis=1)
    coef, residual, _, _ = np.linalg.lstsq(design, np.array(values), rcond=None)
    dof = max(len(sizes) - 2, 1)
    sigma2 = float(np.sum((design @ coef - values) ** 2)) / dof
    covariance = sigma2 * np.linalg.inv(design.T @ design)
    return float(coef[0]), float(np.sqrt(covariance[0, 0]))


def _mmd2_poly(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kpd(x: np.ndarray, y: np.ndarray, batch_size: int = 1000, batches: int = 10, seed: int = 0) -> tuple[float, float]:
    """Kernel physics distance: median and half-IQR of unbiased MMD^2 over batches."""
    rng = np.random.default_rng(seed)
    size = min(batch_size, len(x), len(y))
    values = [_mmd2_poly(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
              for _ in range(batches)]
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float((q3 - q1) / 2)


@dataclass(frozen=True)
class FeatureMetric:
    """Per-feature distances of candidate vs reference, and reference-half vs half
    (``gbt_auc``: the boosted-trees two-sample AUC of this feature alone)."""

    name: str
    w1_over_sigma: float
    w1_over_sigma_ref: float
    ks: float
    ks_ref: float
    gbt_auc: float
    gbt_auc_ref: float


@dataclass(frozen=True)
class ValidationMetrics:
    """All metrics of `compare`; ``*_ref`` are reference-vs-reference values for scale.

    ``auc``: MLP two-sample AUC on all features; ``gbt_auc``: boosted-trees AUC on all
    features; ``gbt_auc_physics``: boosted-trees AUC on ``physics_features`` (NaN and
    an empty tuple when the compared features do not include them all);
    ``auc_null_sigma``: standard deviation of a useless classifier's AUC at the
    candidate-vs-reference sample size (``auc_null_sigma_ref``: at the half-reference
    size); ``pair_gbt_auc``: boosted-trees AUC of each pair "a*b" (when asked for).
    """

    features: tuple[str, ...]
    n_reference: int
    n_candidate: int
    per_feature: dict[str, FeatureMetric]
    auc: float
    auc_ref: float
    gbt_auc: float
    gbt_auc_ref: float
    physics_features: tuple[str, ...]
    gbt_auc_physics: float
    gbt_auc_physics_ref: float
    auc_null_sigma: float
    auc_null_sigma_ref: float
    fpd: float
    fpd_err: float
    fpd_ref: float
    fpd_ref_err: float
    kpd: float
    kpd_err: float
    kpd_ref: float
    kpd_ref_err: float
    pair_gbt_auc: dict[str, float] = field(default_factory=dict)
    pair_gbt_auc_ref: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    #: Kish's effective sample sizes (sum w)^2 / sum w^2 (the row counts when unweighted).
    n_reference_effective: float = float("nan")
    n_candidate_effective: float = float("nan")

    @property
    def max_w1_over_sigma(self) -> float:
        return max(m.w1_over_sigma for m in self.per_feature.values())

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """The metrics as a Markdown table."""
        rows = ["| metric | candidate vs reference | reference vs reference |", "|---|---|---|",
                f"| muons: rows (effective size, (sum w)^2 / sum w^2) | candidate {self.n_candidate} "
                f"({self.n_candidate_effective:.4g}) | reference {self.n_reference} "
                f"({self.n_reference_effective:.4g}) |"]
        if self.physics_features:
            rows.append(f"| GBT AUC physics ({', '.join(self.physics_features)}) | {self.gbt_auc_physics:.4f} "
                        f"| {self.gbt_auc_physics_ref:.4f} |")
        rows.append(f"| GBT AUC all features | {self.gbt_auc:.4f} | {self.gbt_auc_ref:.4f} |")
        rows.append(f"| MLP classifier AUC all features | {self.auc:.4f} | {self.auc_ref:.4f} |")
        rows.append(f"| AUC of a blind classifier (1 sigma) | {self.auc_null_sigma:.4f} "
                    f"| {self.auc_null_sigma_ref:.4f} |")
        for m in self.per_feature.values():
            rows.append(f"| GBT AUC {m.name} alone | {m.gbt_auc:.4f} | {m.gbt_auc_ref:.4f} |")
        for pair, value in sorted(self.pair_gbt_auc.items(), key=lambda item: -item[1]):
            rows.append(f"| GBT AUC {pair.replace('*', ', ')} | {value:.4f} | {self.pair_gbt_auc_ref[pair]:.4f} |")
        for m in self.per_feature.values():
            rows.append(f"| W1/sigma {m.name} | {m.w1_over_sigma:.4f} | {m.w1_over_sigma_ref:.4f} |")
        for m in self.per_feature.values():
            rows.append(f"| KS {m.name} | {m.ks:.4f} | {m.ks_ref:.4f} |")
        rows.append(f"| FPD | {self.fpd:.5f} ± {self.fpd_err:.5f} | {self.fpd_ref:.5f} ± {self.fpd_ref_err:.5f} |")
        rows.append(f"| KPD | {self.kpd:.6f} ± {self.kpd_err:.6f} | {self.kpd_ref:.6f} ± {self.kpd_ref_err:.6f} |")
        for key, value in self.extra.items():
            rows.append(f"| {key} | {value:.5g} | |")
        return "\n".join(rows)


def _resample(x: np.ndarray, w: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    if w is None:
        return x
    return x[rng.choice(len(x), len(x), replace=True, p=w / w.sum())]


def compare(reference, candidate, features: Sequence[str] | None = None,
            reference_weights: np.ndarray | None = None, candidate_weights: np.ndarray | None = None,
            seed: int = 0, classifier_epochs: int = 30, physics_features: Sequence[str] = PHYSICS_FEATURES,
            pairwise: bool = False, gbt_iterations: int = GBT_ITERATIONS) -> ValidationMetrics:
    """Compare ``candidate`` to ``reference`` (MuonBatch, mapping or arrays, see `feature_arrays`).

    The reference-vs-reference values compare two random halves of the reference.  The
    boosted-trees AUC is computed on all features, on ``physics_features`` (when all of
    them are compared), on each feature alone and, with ``pairwise``, on each pair.
    """
    xr, names, wr = feature_arrays(reference, features)
    xc, names_c, wc = feature_arrays(candidate, features or names)
    if xr.shape[1] != xc.shape[1]:
        raise ValueError(f"reference has {xr.shape[1]} features {names}, candidate {xc.shape[1]} {names_c}")
    wr = reference_weights if reference_weights is not None else wr
    wc = candidate_weights if candidate_weights is not None else wc
    rng = np.random.default_rng(seed)
    half = rng.permutation(len(xr))
    a, b = half[: len(xr) // 2], half[len(xr) // 2:]
    wa, wb = (None, None) if wr is None else (wr[a], wr[b])
    mean = np.average(xr, axis=0, weights=wr)
    sigma = np.sqrt(np.average((xr - mean) ** 2, axis=0, weights=wr)) + 1e-300
    trees = {"seed": seed, "iterations": gbt_iterations}
    single = gbt_feature_aucs(xr, xc, names, wr, wc, **trees)
    single_ref = gbt_feature_aucs(xr[a], xr[b], names, wa, wb, **trees)
    per_feature = {}
    for j, name in enumerate(names):
        per_feature[name] = FeatureMetric(
            name,
            wasserstein1(xr[:, j], xc[:, j], wr, wc) / sigma[j],
            wasserstein1(xr[a, j], xr[b, j], wa, wb) / sigma[j],
            ks_statistic(xr[:, j], xc[:, j], wr, wc),
            ks_statistic(xr[a, j], xr[b, j], wa, wb),
            single[name],
            single_ref[name],
        )
    physics = tuple(physics_features) if set(physics_features) <= set(names) else ()
    subset = [names.index(name) for name in physics]
    gbt_physics, gbt_physics_ref = ((gbt_auc(xr[:, subset], xc[:, subset], wr, wc, **trees),
                                     gbt_auc(xr[a][:, subset], xr[b][:, subset], wa, wb, **trees))
                                    if physics else (float("nan"), float("nan")))
    pairs = gbt_pair_aucs(xr, xc, names, wr, wc, **trees) if pairwise else {}
    pairs_ref = gbt_pair_aucs(xr[a], xr[b], names, wa, wb, **trees) if pairwise else {}
    zr, zc = (xr - mean) / sigma, (xc - mean) / sigma
    zr_s, zc_s = _resample(zr, wr, rng), _resample(zc, wc, rng)
    za, zb = _resample(zr[a], wa, rng), _resample(zr[b], wb, rng)
    fpd_value, fpd_err = fpd(zr_s, zc_s, seed=seed)
    fpd_ref, fpd_ref_err = fpd(za, zb, seed=seed)
    kpd_value, kpd_err = kpd(zr_s, zc_s, seed=seed)
    kpd_ref, kpd_ref_err = kpd(za, zb, seed=seed)
    return ValidationMetrics(
        features=tuple(names), n_reference=len(xr), n_candidate=len(xc), per_feature=per_feature,
        auc=classifier_auc(xr, xc, wr, wc, seed, classifier_epochs),
        auc_ref=classifier_auc(xr[a], xr[b], wa, wb, seed, classifier_epochs),
        gbt_auc=gbt_auc(xr, xc, wr, wc, **trees), gbt_auc_ref=gbt_auc(xr[a], xr[b], wa, wb, **trees),
        physics_features=physics, gbt_auc_physics=gbt_physics, gbt_auc_physics_ref=gbt_physics_ref,
        auc_null_sigma=auc_null_sigma(len(xr), len(xc)), auc_null_sigma_ref=auc_null_sigma(len(a), len(b)),
        fpd=fpd_value, fpd_err=fpd_err, fpd_ref=fpd_ref, fpd_ref_err=fpd_ref_err,
        kpd=kpd_value, kpd_err=kpd_err, kpd_ref=kpd_ref, kpd_ref_err=kpd_ref_err,
        pair_gbt_auc=pairs, pair_gbt_auc_ref=pairs_ref,
        n_reference_effective=effective_sample_size(wr, len(xr)),
        n_candidate_effective=effective_sample_size(wc, len(xc)))
