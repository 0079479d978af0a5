"""Fidelity of the flow on held-out transported muons, per subset, and its enrichment.

For each subset k (P0, P1, P2) the truth is the holdout rows of the training data with
label >= k (transport labels, never used in training).  Two candidates are compared
with it: the inclusive model (latent sigma 1) restricted to its muons of subset k, and
the model sampled at sigma_k restricted likewise, with its importance weights.  Both
are re-labelled with the geometric rule (`DecayVessel.labels`, straight tracks from
the shield end).  Metrics on (x, y, px, py, pz, charge): per-feature W1 divided by
the truth's standard deviation, and the boosted-trees two-sample AUC
(`shipfastsim.validation.two_sample.gbt_auc`, 200 trees).  The enrichment of subset k
is its fraction among the sigma_k muons over its fraction among the inclusive ones;
the weighted fraction at sigma_k must equal the inclusive fraction (exact weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shipfastsim.geometry.decay_vessel import DecayVessel
from shipfastsim.plugins.nf_after_shield.model import MuonFlow
from shipfastsim.validation.metrics import wasserstein1
from shipfastsim.validation.two_sample import gbt_auc

__all__ = ["FEATURES", "GeneratedSample", "generate", "fidelity", "FidelityRow", "enrichment_table",
           "format_fidelity", "plot_subsets", "plot_rows"]

FEATURES = ("x", "y", "px", "py", "pz", "charge")


@dataclass
class GeneratedSample:
    """Muons [n, 6] (x, y, px, py, pz, charge), importance weights and geometric labels."""

    state: np.ndarray
    weight: np.ndarray
    label: np.ndarray


def generate(flow: MuonFlow, n: int, sigma: float, vessel: DecayVessel, seed: int = 0,
             chunk: int = 65536) -> GeneratedSample:
    """``n`` muons of the flow at latent ``sigma`` (the plugin's CPU engine, `fast.cpu_engine`:
    the `NoiseToMuon` graph's output, with the plugin's redraw of muons outside the training
    sample's range), labelled by ``vessel``."""
    from shipfastsim.plugins.gan_target import redraw_rejected
    from shipfastsim.plugins.nf_after_shield.fast import cpu_engine
    from shipfastsim.plugins.nf_after_shield.sampling import envelope, outside_envelope

    generator = torch.Generator().manual_seed(seed)
    module = cpu_engine(flow, sigma)

    def make(m: int) -> torch.Tensor:
        noise = torch.cat([torch.randn(m, 5, generator=generator), torch.rand(m, 1, generator=generator)], 1)
        return module(noise).double()

    with torch.inference_mode():
        out = torch.cat([make(min(chunk, n - first)) for first in range(0, n, chunk)])
        # as the plugin writes them: muons outside the training sample's range redrawn
        bounds = envelope(flow)
        out = redraw_rejected(out, make, lambda rows: outside_envelope(rows, *bounds),
                              what="outside the transported range")
    labels = vessel.labels(out[:, 0], out[:, 1], out[:, 2], out[:, 3], out[:, 4], out[:, 5])
    state = torch.cat([out[:, [0, 1, 3, 4, 5]], -out[:, 6:7] / 13.0], 1)
    return GeneratedSample(state.numpy(), out[:, 7].numpy(), labels.numpy())


@dataclass
class FidelityRow:
    subset: str
    candidate: str
    n_truth: int
    n_candidate: int
    w1_over_sigma: dict[str, float]
    gbt_auc: float


def fidelity(truth: np.ndarray, candidate: np.ndarray, weight: np.ndarray | None, subset: str, name: str,
             seed: int = 0) -> FidelityRow:
    """W1/sigma per feature and the GBT AUC of a (weighted) candidate against the truth."""
    w1 = {f: wasserstein1(truth[:, j], candidate[:, j], None, weight) / (truth[:, j].std() + 1e-30)
          for j, f in enumerate(FEATURES)}
    auc = gbt_auc(truth, candidate, None, weight, seed=seed)
    return FidelityRow(subset, name, len(truth), len(candidate), w1, auc)


def enrichment_table(samples: dict[float, GeneratedSample]) -> list[dict[str, float]]:
    """Per sigma and subset: fraction, weighted fraction, enrichment and ESS per muon of the subset."""
    base = samples[1.0]
    rows = []
    for sigma, s in samples.items():
        for k, name in enumerate(("P0", "P1", "P2")):
            member = s.label >= k
            w = s.weight[member]
            inclusive = float((base.label >= k).mean())
            fraction = float(member.mean())
            weighted = float(s.weight[member].sum() / len(s.weight))
            ess = float(w.sum() ** 2 / (w * w).sum()) if len(w) else 0.0
            rows.append({"sigma": sigma, "subset": name, "fraction": fraction, "inclusive_fraction": inclusive,
                         "weighted_fraction": weighted, "enrichment": fraction / inclusive if inclusive else np.nan,
                         "ess_per_muon": ess / len(w) if len(w) else 0.0, "ess_per_generated": ess / len(s.weight)})
    return rows


def format_fidelity(rows: list[FidelityRow]) -> str:
    head = f"{'subset':<7}{'candidate':<26}{'n truth':>9}{'n cand':>9}" + "".join(f"{f:>8}" for f in FEATURES)
    lines = [head + f"{'GBT AUC':>9}"]
    for r in rows:
        lines.append(f"{r.subset:<7}{r.candidate:<26}{r.n_truth:>9}{r.n_candidate:>9}"
                     + "".join(f"{r.w1_over_sigma[f]:>8.3f}" for f in FEATURES) + f"{r.gbt_auc:>9.3f}")
    return "\n".join(lines)


def plot_subsets(truth: np.ndarray, truth_label: np.ndarray, samples: dict[float, GeneratedSample],
                 sigmas: tuple[float, ...], path) -> None:
    """Per subset (rows) and feature (columns): holdout truth, inclusive model, sigma_k weighted."""
    rows = []
    for k, subset in enumerate(("P0", "P1", "P2")):
        t = truth[truth_label >= k]
        inc = samples[1.0]
        candidates = [(inc.state[inc.label >= k], None, "sigma 1", "C0")]
        if sigmas[k] != 1.0:
            s = samples[sigmas[k]]
            m = s.label >= k
            candidates.append((s.state[m], s.weight[m], f"sigma {sigmas[k]:g}, weighted", "C3"))
        rows.append((subset, t, f"holdout ({len(t)})", candidates))
    plot_rows(rows, "nf-after-shield at the shield end: holdout transported muons vs the flow, per decay-vessel "
                    "subset", path)


def plot_rows(rows: list[tuple[str, np.ndarray, str, list[tuple[np.ndarray, np.ndarray | None, str, str]]]],
              title: str, path) -> None:
    """One row of five histograms (x, y, px, py, pz) per entry ``(subset, truth state, truth
    legend, candidates)``, each candidate ``(state, weights or None, legend, colour)``; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ("x [cm]", "y [cm]", "px [GeV/c]", "py [GeV/c]", "pz [GeV/c]")
    fig, axes = plt.subplots(len(rows), 5, figsize=(17, 3.2 * len(rows)), squeeze=False)
    for k, (subset, truth, truth_legend, candidates) in enumerate(rows):
        for j, name in enumerate(names):
            ax = axes[k, j]
            values = truth[:, j]
            lo, hi = np.quantile(values, [0.005, 0.995]) if len(values) > 20 else (values.min(), values.max())
            bins = np.linspace(lo, hi, 41) if j != 4 else np.geomspace(max(lo, 0.3), hi, 41)
            ax.hist(values, bins, density=True, histtype="stepfilled", alpha=0.3, color="k", label=truth_legend)
            for state, weight, legend, colour in candidates:
                ax.hist(state[:, j], bins, weights=weight, density=True, histtype="step", color=colour, label=legend)
            if j == 4:
                ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(name)
            if j == 0:
                ax.set_ylabel(f"{subset}: density")
                ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
