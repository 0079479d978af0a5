"""Memorisation check of a generator trained on a small sample: distance to the closest training row.

A generator that copies (or slightly jitters) its training rows passes every
two-sample test against the training data and most against new data, so its output
is compared with the *holdout*'s: for each generated row and each holdout row, the
Euclidean distance to the nearest training row in features standardised by the
training sample.  The holdout was never trained on, so its distances show what a
fresh draw from the same distribution gives.  A memorising generator's distances are
smaller: the ratio of the medians falls below 1 and more than the expected 5 % of
generated rows lie closer than the holdout's 5 % quantile.

Both samples should be of comparable size (nearest-neighbour distances shrink with
the density of the training sample only, not with the query sample's size, so
unequal sizes are fine; the quantile estimates are just noisier).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["MemorisationCheck", "distance_to_closest_record", "memorisation_check"]


@dataclass(frozen=True)
class MemorisationCheck:
    """Distances to the closest training row (standardised units).

    ``median_ratio``: median over generated rows / median over holdout rows (1: as a fresh
    sample, < 1: closer to the training rows than new data are); ``close_fraction``: fraction
    of generated rows closer than the holdout's 5 % quantile (0.05 expected); ``exact_copies``:
    generated rows within 1e-6 of a training row.
    """

    median_generated: float
    median_holdout: float
    median_ratio: float
    close_fraction: float
    exact_copies: int

    def to_dict(self) -> dict:
        return asdict(self)


def distance_to_closest_record(train: np.ndarray, query: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Distance of each ``query`` row to its nearest ``train`` row after dividing columns by ``scale``."""
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(train, np.float64) / scale)
    distances, _ = tree.query(np.asarray(query, np.float64) / scale, k=1)
    return distances


def memorisation_check(train: np.ndarray, holdout: np.ndarray, generated: np.ndarray) -> MemorisationCheck:
    """Compare generated rows' distances to the training rows with the holdout's (rows = samples)."""
    scale = np.asarray(train, np.float64).std(0) + 1e-12
    d_gen = distance_to_closest_record(train, generated, scale)
    d_hold = distance_to_closest_record(train, holdout, scale)
    median_gen, median_hold = float(np.median(d_gen)), float(np.median(d_hold))
    return MemorisationCheck(median_gen, median_hold, median_gen / median_hold,
                             float(np.mean(d_gen < np.quantile(d_hold, 0.05))), int(np.sum(d_gen < 1e-6)))
