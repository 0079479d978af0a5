"""Working point from a target recall, Russian roulette, and the figures of merit.

*Working point.*  The threshold on the calibrated probability is not a number in the
code: it is chosen on the validation split so that the dangerous muons passing it are
at least the target ``recall``.  With ``confidence`` c > 0 it is the highest threshold
whose one-sided Clopper-Pearson lower bound (confidence c) on the recall is still at
least the target, so the recall on new muons falls short of the target only with
probability about 1 - c; c = 0 uses the plain validation fraction.

*Russian roulette* (`roulette`).  A muon below the threshold is kept with probability
q and its weight becomes w / q; muons above it keep w.  Then E[kept weight] = w for
every muon, so every weighted total (all muons, dangerous ones, any histogram) stays
unbiased, at the price of variance from the few heavy survivors.

*Figures* (`filter_figures`): recall (weighted fraction of dangerous weight above
threshold), reduction factor (all weight / weight above threshold; what the plain cut
saves) and its ideal value 1 / (dangerous fraction), reached by a perfect classifier
when the label is a function of the target kinematics.

*Ceiling* (`reduction_ceiling`).  The label is not such a function: scattering and
energy-loss fluctuations in 30 m of iron decide it, so a muon x is dangerous with a
probability p(x) of the transport.  With D = E[p] (the dangerous fraction) and
c = E[p(x) | dangerous] = E[p^2] / D (measured by transporting dangerous muons again),
any filter keeping a set S with recall r = E[p 1_S] / D keeps a fraction
mu(S) >= r^2 D / c (Cauchy-Schwarz: E[p 1_S]^2 <= mu(S) E[p^2]), so its reduction
factor is at most c / (r^2 D) = c / r^2 times the ideal one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["threshold_for_recall", "recall_lower_bound", "roulette", "FilterFigures", "filter_figures",
           "reduction_ceiling"]


def recall_lower_bound(passed: np.ndarray | int, total: int, confidence: float) -> np.ndarray | float:
    """One-sided Clopper-Pearson lower bound on a fraction ``passed / total`` (0 if passed = 0)."""
    from scipy.stats import beta

    passed = np.asarray(passed, dtype=np.float64)
    if confidence <= 0:
        return passed / total
    bound = beta.ppf(1.0 - confidence, passed, total - passed + 1.0)
    return np.where(passed > 0, np.nan_to_num(bound, nan=0.0), 0.0)


def threshold_for_recall(positive_scores: np.ndarray, recall: float, confidence: float = 0.0) -> float:
    """Highest threshold t with (a lower bound on) the fraction of ``positive_scores >= t``
    at least ``recall``; see the module docstring.

    Raises:
        ValueError: no positives, or not even keeping all of them meets the bound.
    """
    scores = np.sort(np.asarray(positive_scores, dtype=np.float64))[::-1]  # descending
    n = len(scores)
    if n == 0:
        raise ValueError("no dangerous muons to set the working point on")
    kept = np.arange(1, n + 1)  # threshold scores[k - 1] keeps (at least) the k highest
    ok = np.nonzero(recall_lower_bound(kept, n, confidence) >= recall)[0]
    if len(ok) == 0:
        raise ValueError(f"{n} dangerous muons cannot show a recall of {recall} at confidence {confidence}; "
                         "lower the confidence or label more muons")
    return float(scores[ok[0]])


def roulette(passed, weight, keep_probability: float, generator):
    """Russian roulette (torch tensors): keep mask and new weights (see the module docstring).

    One uniform number is drawn for every muon, from ``generator``, so the result
    depends only on the generator's seed and the batch.
    """
    import torch

    u = torch.rand(passed.shape, generator=generator, device=generator.device, dtype=torch.float64).to(passed.device)
    survives = u < keep_probability
    keep = passed | survives
    new_weight = torch.where(passed, weight, weight / keep_probability)
    return keep, torch.where(keep, new_weight, torch.zeros_like(new_weight))


@dataclass(frozen=True)
class FilterFigures:
    """Working-point figures on a labelled sample (weighted)."""

    threshold: float
    recall: float
    reduction: float
    ideal_reduction: float
    dangerous_fraction: float
    dangerous: int
    muons: int

    def to_dict(self) -> dict:
        return asdict(self)


def filter_figures(scores: np.ndarray, dangerous: np.ndarray, weight: np.ndarray, threshold: float) -> FilterFigures:
    """Recall, reduction factor and ideal reduction at ``threshold`` (see the module docstring)."""
    scores, dangerous, weight = np.asarray(scores), np.asarray(dangerous, dtype=bool), np.asarray(weight, np.float64)
    passed = scores >= threshold
    total, bad = weight.sum(), weight[dangerous].sum()
    kept = weight[passed].sum()
    return FilterFigures(threshold=float(threshold), recall=float(weight[passed & dangerous].sum() / bad),
                         reduction=float(total / kept) if kept > 0 else float("inf"),
                         ideal_reduction=float(total / bad), dangerous_fraction=float(bad / total),
                         dangerous=int(dangerous.sum()), muons=len(scores))


def reduction_ceiling(concentration: float, dangerous_fraction: float, recall: float) -> float:
    """Largest reduction factor any filter of the target kinematics can have at ``recall``
    (see the module docstring): concentration c / (recall^2 * dangerous fraction)."""
    return concentration / (recall**2 * dangerous_fraction)
