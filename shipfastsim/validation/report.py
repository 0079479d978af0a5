"""Validation report: figures and metrics of a candidate sample against a reference.

`write_report` writes into a directory:

* ``features.png``: per-feature histograms (hist + mplhep), reference filled,
  candidate as a line, with a candidate/reference ratio panel; log y where the
  feature's spectrum spans decades (`FEATURE_STYLE`);
* ``p_pt.png``: the (p, pT) plane of reference and candidate side by side (log colour);
* ``correlations.png``: the two Pearson correlation matrices and their difference;
* ``metrics.json`` / ``metrics.md``: `ValidationMetrics` from `compare`;
* ``report.md``: the table and the figures in one page.

It is generic over feature sets: any names work; unknown ones get a linear style.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shipfastsim.validation.metrics import PHYSICS_FEATURES, ValidationMetrics, compare, feature_arrays

__all__ = ["FEATURE_STYLE", "write_report", "plot_features", "plot_p_pt", "plot_correlations"]

#: Feature -> (axis label, log y).
FEATURE_STYLE: dict[str, tuple[str, bool]] = {
    "x": ("x [cm]", True), "y": ("y [cm]", True), "z": ("z [cm]", True),
    "px": ("$p_x$ [GeV/c]", True), "py": ("$p_y$ [GeV/c]", True), "pz": ("$p_z$ [GeV/c]", True),
    "p": ("p [GeV/c]", True), "pt": ("$p_T$ [GeV/c]", True), "charge": ("charge [e]", False),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _hist(values: np.ndarray, weights: np.ndarray | None, edges: np.ndarray):
    import hist

    h = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight())
    h.fill(np.clip(values, edges[0], edges[-1] - 1e-9 * (edges[-1] - edges[0])), weight=weights)
    return h


def plot_features(xr: np.ndarray, xc: np.ndarray, names: Sequence[str], path: Path, wr=None, wc=None,
                  labels: tuple[str, str] = ("reference", "candidate"), bins: int = 50) -> Path:
    """Grid of normalised histograms with ratio panels (overflow in the edge bins)."""
    import mplhep

    plt = _plt()
    n = len(names)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig = plt.figure(figsize=(5 * cols, 5 * rows))
    grid = fig.add_gridspec(rows, cols, hspace=0.3, wspace=0.3)
    for j, name in enumerate(names):
        label, log_y = FEATURE_STYLE.get(name, (name, False))
        cell = grid[j // cols, j % cols].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.05)
        top = fig.add_subplot(cell[0])
        bottom = fig.add_subplot(cell[1], sharex=top)
        # reference range, widened to the candidate's bulk (1e-4 quantiles); the rest goes to the edge bins
        low = min(np.min(xr[:, j]), np.quantile(xc[:, j], 1e-4))
        high = max(np.max(xr[:, j]), np.quantile(xc[:, j], 1 - 1e-4))
        if np.unique(xr[:, j]).size <= 3:
            edges = np.linspace(low - 0.5, high + 0.5, 2 * int(high - low) + 2)
        else:
            edges = np.linspace(low, high, bins + 1)
        hr, hc = _hist(xr[:, j], wr, edges), _hist(xc[:, j], wc, edges)
        sr, sc = hr.values().sum(), hc.values().sum()
        mplhep.histplot(hr / sr, ax=top, histtype="fill", alpha=0.4, label=labels[0], yerr=False)
        mplhep.histplot(hc / sc, ax=top, histtype="step", color="k", label=labels[1], yerr=False)
        top.set_yscale("log" if log_y else "linear")
        top.set_ylabel("fraction")
        top.legend(fontsize=8)
        top.tick_params(labelbottom=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (hc.values() / sc) / (hr.values() / sr)
            error = ratio * np.sqrt(hc.variances() / np.maximum(hc.values(), 1e-300) ** 2
                                    + hr.variances() / np.maximum(hr.values(), 1e-300) ** 2)
        centres = 0.5 * (edges[1:] + edges[:-1])
        bottom.errorbar(centres, ratio, yerr=error, fmt=".", color="k", ms=3)
        bottom.axhline(1.0, color="grey", lw=0.8)
        bottom.set_ylim(0.5, 1.5)
        bottom.set_ylabel("ratio")
        bottom.set_xlabel(label)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_p_pt(xr: np.ndarray, xc: np.ndarray, names: Sequence[str], path: Path, wr=None, wc=None,
              labels: tuple[str, str] = ("reference", "candidate")) -> Path | None:
    """Side-by-side 2-D histograms of (p, pT); skipped if the features lack p or pt."""
    if "p" not in names or "pt" not in names:
        return None
    from matplotlib.colors import LogNorm

    plt = _plt()
    ip, it = names.index("p"), names.index("pt")
    pe = np.linspace(0, np.percentile(xr[:, ip], 99.9), 60)
    te = np.linspace(0, np.percentile(xr[:, it], 99.9), 60)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    maps = [np.histogram2d(x[:, ip], x[:, it], [pe, te], weights=w)[0] for x, w in ((xr, wr), (xc, wc))]
    maps = [m / m.sum() for m in maps]
    vmin = min(m[m > 0].min() for m in maps)
    vmax = max(m.max() for m in maps)
    for ax, counts, label in zip(axes, maps, labels, strict=True):
        mesh = ax.pcolormesh(pe, te, counts.T, norm=LogNorm(vmin, vmax))
        ax.set_title(label)
        ax.set_xlabel("p [GeV/c]")
    axes[0].set_ylabel("$p_T$ [GeV/c]")
    fig.colorbar(mesh, ax=axes, label="fraction")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _correlation(x: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Pearson correlation matrix of the columns of ``x``, weighted by ``weights`` when given."""
    covariance = np.atleast_2d(np.cov(x, rowvar=False, aweights=weights))
    scale = np.sqrt(np.diag(covariance))
    with np.errstate(divide="ignore", invalid="ignore"):
        return covariance / np.outer(scale, scale)


def plot_correlations(xr: np.ndarray, xc: np.ndarray, names: Sequence[str], path: Path,
                      labels: tuple[str, str] = ("reference", "candidate"), wr=None, wc=None) -> Path:
    """Pearson correlation matrices of both samples (weighted by ``wr``, ``wc`` when given)
    and candidate minus reference."""
    plt = _plt()
    cr, cc = _correlation(xr, wr), _correlation(xc, wc)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, matrix, title, limit in zip(axes, (cr, cc, cc - cr), (*labels, "difference"), (1, 1, 0.2), strict=True):
        image = ax.imshow(np.nan_to_num(matrix), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks(range(len(names)), names, rotation=60)
        ax.set_yticks(range(len(names)), names)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.046)
        for (i, k), value in np.ndenumerate(np.nan_to_num(matrix)):
            ax.text(k, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(reference, candidate, output: str | Path, features: Sequence[str] | None = None,
                 labels: tuple[str, str] = ("reference", "candidate"), seed: int = 0,
                 metrics: ValidationMetrics | None = None, physics_features: Sequence[str] = PHYSICS_FEATURES,
                 pairwise: bool = False) -> ValidationMetrics:
    """Compute the metrics (`compare`; ``physics_features`` and ``pairwise`` passed on) and
    write figures, tables and ``report.md`` to ``output``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    xr, names, wr = feature_arrays(reference, features)
    xc, _, wc = feature_arrays(candidate, features or names)
    metrics = metrics or compare(xr, xc, names, wr, wc, seed=seed, physics_features=physics_features,
                                 pairwise=pairwise)
    plot_features(xr, xc, names, output / "features.png", wr, wc, labels)
    has_p_pt = plot_p_pt(xr, xc, names, output / "p_pt.png", wr, wc, labels) is not None
    plot_correlations(xr, xc, names, output / "correlations.png", labels, wr, wc)
    (output / "metrics.json").write_text(json.dumps(metrics.to_dict(), indent=1) + "\n")
    table = metrics.table()
    (output / "metrics.md").write_text(table + "\n")
    figures = ["features.png", *(["p_pt.png"] if has_p_pt else []), "correlations.png"]
    text = [f"# Validation report: {labels[1]} vs {labels[0]}", "",
            f"{metrics.n_candidate} candidate rows vs {metrics.n_reference} reference rows (effective sizes "
            f"{metrics.n_candidate_effective:.4g} and {metrics.n_reference_effective:.4g}); features: "
            f"{', '.join(names)}. Reference-vs-reference values compare two random halves of the reference. "
            "GBT: boosted-trees two-sample AUC (200 trees, trained on half of each sample, scored on the other "
            "half; 0.5 = indistinguishable); the physics subset is the fidelity gate.", "",
            table, ""] + [f"![{name}]({name})" for name in figures]
    (output / "report.md").write_text("\n".join(text) + "\n")
    return metrics
