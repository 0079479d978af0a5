"""Two-sample metrics comparing a candidate sample (a surrogate's output) to a reference.

Every metric takes 2-D feature arrays (rows = muons, columns = features) with optional
per-row weights; `feature_arrays` turns a `MuonBatch`, a mapping of columns or an
array into that form.  `compare` computes them all, each beside its
*reference-vs-reference* value (two random halves of the reference) for scale, and
returns a `ValidationMetrics` dataclass:

* per feature: 1-Wasserstein distance divided by the reference's standard deviation
  (unitless) and the Kolmogorov-Smirnov statistic;
* classifier two-sample test: a small torch MLP trained to tell reference from
  candidate on one half of each sample; its ROC AUC on the other half (0.5 = the
  samples cannot be told apart);
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
import torch

from shipfastsim.batch import MuonBatch

__all__ = [
    "MUON_FEATURES", "FeatureMetric", "ValidationMetrics", "feature_arrays", "wasserstein1", "ks_statistic",
    "weighted_auc", "classifier_auc", "frechet_distance", "fpd", "kpd", "compare",
]

#: Features of a muon sample: position [cm], momentum [GeV/c], |p| and pT [GeV/c], charge [e].
MUON_FEATURES = ("x", "y", "z", "px", "py", "pz", "p", "pt", "charge")


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


def _unit(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)


def wasserstein1(a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None, wb: np.ndarray | None = None) -> float:
    """1-Wasserstein distance between two 1-D (weighted) samples, in the samples' unit."""
    return float(scipy.stats.wasserstein_distance(a, b, wa, wb))


def ks_statistic(a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None, wb: np.ndarray | None = None) -> float:
    """Largest distance between the two (weighted) empirical CDFs."""
    wa, wb = _unit(wa, len(a)), _unit(wb, len(b))
    grid = np.concatenate([a, b])
    grid.sort()
    order_a, order_b = np.argsort(a), np.argsort(b)
    cdf_a = np.concatenate([[0.0], np.cumsum(wa[order_a])]) / wa.sum()
    cdf_b = np.concatenate([[0.0], np.cumsum(wb[order_b])]) / wb.sum()
    fa = cdf_a[np.searchsorted(a[order_a], grid, side="right")]
    fb = cdf_b[np.searchsorted(b[order_b], grid, side="right")]
    return float(np.max(np.abs(fa - fb)))


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC of ``scores`` for binary ``labels`` (1 = positive), ties counted half."""
    weights = _unit(weights, len(scores))
    order = np.argsort(scores, kind="mergesort")
    s, y, w = scores[order], labels[order].astype(bool), weights[order]
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    neg = np.add.reduceat(np.where(y, 0.0, w), start)
    pos = np.add.reduceat(np.where(y, w, 0.0), start)
    neg_below = np.cumsum(neg) - neg
    area = np.sum(pos * (neg_below + 0.5 * neg))
    return float(area / (pos.sum() * neg.sum()))


def classifier_auc(reference: np.ndarray, candidate: np.ndarray, wr: np.ndarray | None = None,
                   wc: np.ndarray | None = None, seed: int = 0, epochs: int = 30, hidden: int = 64) -> float:
    """Classifier two-sample test: AUC on held-out halves of a 2-hidden-layer MLP.

    Both samples are cut to equal size, standardised by the reference, split 50/50
    into train and test; the classifier (ReLU MLP, Adam, weighted BCE) is trained on
    the train halves; the AUC of its scores on the test halves is returned.
    """
    rng = np.random.default_rng(seed)
    n = min(len(reference), len(candidate))
    ir, ic = rng.permutation(len(reference))[:n], rng.permutation(len(candidate))[:n]
    mean, std = reference.mean(0), reference.std(0) + 1e-12
    x = np.concatenate([(reference[ir] - mean) / std, (candidate[ic] - mean) / std])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    w = np.concatenate([_unit(wr, len(reference))[ir], _unit(wc, len(candidate))[ic]])
    w[:n] /= w[:n].mean()
    w[n:] /= w[n:].mean()
    is_train = np.zeros(2 * n, bool)
    is_train[np.concatenate([rng.permutation(n)[: n // 2], n + rng.permutation(n)[: n // 2]])] = True
    torch_gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                  torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    xt, yt, wt = (torch.as_tensor(v[is_train], dtype=torch.float32) for v in (x, y, w))
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    batch = 256
    for _ in range(epochs):
        for rows in torch.randperm(len(xt), generator=torch_gen).split(batch):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[rows]).squeeze(1), yt[rows],
                                                                        weight=wt[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        scores = net(torch.as_tensor(x[~is_train], dtype=torch.float32)).squeeze(1).numpy()
    return weighted_auc(scores, y[~is_train], w[~is_train])


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
    """Per-feature distances of candidate vs reference, and reference-half vs half."""

    name: str
    w1_over_sigma: float
    w1_over_sigma_ref: float
    ks: float
    ks_ref: float


@dataclass(frozen=True)
class ValidationMetrics:
    """All metrics of `compare`; ``*_ref`` are reference-vs-reference values for scale."""

    features: tuple[str, ...]
    n_reference: int
    n_candidate: int
    per_feature: dict[str, FeatureMetric]
    auc: float
    auc_ref: float
    fpd: float
    fpd_err: float
    fpd_ref: float
    fpd_ref_err: float
    kpd: float
    kpd_err: float
    kpd_ref: float
    kpd_ref_err: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def max_w1_over_sigma(self) -> float:
        return max(m.w1_over_sigma for m in self.per_feature.values())

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """The metrics as a Markdown table."""
        rows = ["| metric | candidate vs reference | reference vs reference |", "|---|---|---|"]
        for m in self.per_feature.values():
            rows.append(f"| W1/sigma {m.name} | {m.w1_over_sigma:.4f} | {m.w1_over_sigma_ref:.4f} |")
        for m in self.per_feature.values():
            rows.append(f"| KS {m.name} | {m.ks:.4f} | {m.ks_ref:.4f} |")
        rows.append(f"| classifier AUC | {self.auc:.4f} | {self.auc_ref:.4f} |")
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
            seed: int = 0, classifier_epochs: int = 30) -> ValidationMetrics:
    """Compare ``candidate`` to ``reference`` (MuonBatch, mapping or arrays, see `feature_arrays`).

    The reference-vs-reference values compare two random halves of the reference.
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
    per_feature = {}
    for j, name in enumerate(names):
        per_feature[name] = FeatureMetric(
            name,
            wasserstein1(xr[:, j], xc[:, j], wr, wc) / sigma[j],
            wasserstein1(xr[a, j], xr[b, j], wa, wb) / sigma[j],
            ks_statistic(xr[:, j], xc[:, j], wr, wc),
            ks_statistic(xr[a, j], xr[b, j], wa, wb),
        )
    auc = classifier_auc(xr, xc, wr, wc, seed, classifier_epochs)
    auc_ref = classifier_auc(xr[a], xr[b], wa, wb, seed, classifier_epochs)
    zr, zc = (xr - mean) / sigma, (xc - mean) / sigma
    zr_s, zc_s = _resample(zr, wr, rng), _resample(zc, wc, rng)
    za, zb = _resample(zr[a], wa, rng), _resample(zr[b], wb, rng)
    fpd_value, fpd_err = fpd(zr_s, zc_s, seed=seed)
    fpd_ref, fpd_ref_err = fpd(za, zb, seed=seed)
    kpd_value, kpd_err = kpd(zr_s, zc_s, seed=seed)
    kpd_ref, kpd_ref_err = kpd(za, zb, seed=seed)
    return ValidationMetrics(tuple(names), len(xr), len(xc), per_feature, auc, auc_ref, fpd_value, fpd_err,
                             fpd_ref, fpd_ref_err, kpd_value, kpd_err, kpd_ref, kpd_ref_err)
