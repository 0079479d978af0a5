"""The rate that matters: a target generator's muons per generated muon after the shield.

A target generator is judged in the end by how many of its muons get through the
shield, not by its distributions at the target.  `transported_rates` carries
``n_sources`` muons of a generator (or, through ``fairship-file``, of its truth
sample) in ``copies`` azimuthal rotations each through the same fast-shield chain as
the filter's labelling (`shipfastsim.plugins.mlp_filter.labels.label_target_muons`)
and counts, per generated muon, those reaching the shield end and those entering the
decay-vessel aperture (P1) and staying in the vessel (P2).

Errors: the copies of one muon are correlated (a muon that passes in one azimuth
tends to pass in others), so a binomial error over all rows is too small.  The rate
is a ratio of per-source sums, r = sum_s K_s / sum_s C_s (K_s: hits among the C_s
copies of source muon s), and its standard error is the ratio estimator's,

    se(r)^2 = n / (n - 1) * sum_s (K_s - r C_s)^2 / (sum_s C_s)^2 ,

which treats the n source muons as the independent units.  `rate_ratio` compares a
generator's rate with its truth's (ratio, its error, and the pull in combined sigmas).
Units: rates are muons per generated muon (dimensionless).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["TransportedRate", "per_source_rate", "transported_rates", "rate_ratio"]


@dataclass(frozen=True)
class TransportedRate:
    """One label's rate [per generated muon] with its per-source-muon standard error."""

    label: str
    rate: float
    error: float
    hits: int  # rows (copies) with the label
    sources_with_hits: int  # distinct source muons with at least one such copy
    sources: int
    rows: int

    def to_dict(self) -> dict:
        return asdict(self)


def per_source_rate(hits: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    """``(rate, standard error)`` of boolean ``hits`` per row, rows grouped by ``source`` (the
    index of the generated muon each copy comes from): the ratio estimator over sources."""
    hits = np.asarray(hits, dtype=np.float64)
    _, inverse = np.unique(np.asarray(source), return_inverse=True)
    k = np.bincount(inverse, weights=hits)
    c = np.bincount(inverse).astype(np.float64)
    n = len(k)
    rate = k.sum() / c.sum()
    if n < 2:
        return float(rate), float("nan")
    variance = n / (n - 1) * np.sum((k - rate * c) ** 2) / c.sum() ** 2
    return float(rate), float(math.sqrt(variance))


def transported_rates(generator: str, params: dict, n_sources: int, copies: int, seed: int = 1,
                      chunk: int = 5000, shield_params: dict | None = None,
                      progress: bool = False) -> dict[str, TransportedRate]:
    """Label name (shield_end, P1, P2) -> `TransportedRate` of ``n_sources`` muons of ``generator``
    (its ``params``) x ``copies`` phi rotations through fast-shield (``shield_params``)."""
    from shipfastsim.plugins.mlp_filter.labels import label_target_muons

    sample = label_target_muons(n_sources, copies, seed, chunk, shield_params=shield_params, gan_params=params,
                                progress=progress, generator=generator)
    sources = len(np.unique(sample.group))
    rates = {}
    for label, hits in sample.labels.items():
        rate, error = per_source_rate(hits, sample.group)
        rates[label] = TransportedRate(label, rate, error, int(hits.sum()), len(np.unique(sample.group[hits])),
                                       sources, len(hits))
    return rates


def rate_ratio(candidate: TransportedRate, truth: TransportedRate) -> dict[str, float]:
    """Candidate / truth rate with its error (relative errors in quadrature) and the pull,
    (candidate - truth) / sqrt(se_candidate^2 + se_truth^2)."""
    if truth.rate <= 0:
        return {"ratio": float("nan"), "ratio_error": float("nan"), "pull": float("nan")}
    ratio = candidate.rate / truth.rate
    relative = math.hypot(candidate.error / candidate.rate if candidate.rate > 0 else 0.0, truth.error / truth.rate)
    combined = math.hypot(candidate.error, truth.error)
    return {"ratio": ratio, "ratio_error": ratio * relative,
            "pull": (candidate.rate - truth.rate) / combined if combined > 0 else float("nan")}
