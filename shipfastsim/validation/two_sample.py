"""Classifier two-sample tests: can a classifier tell candidate rows from reference rows?

Both tests cut the two samples to the same size n, label reference 0 and candidate 1,
train on one random half of each and return the ROC AUC of the classifier's scores on
the other half (0.5: the samples cannot be told apart; 1: completely separated).

* `gbt_auc`, the strong test: scikit-learn's ``HistGradientBoostingClassifier`` with
  200 iterations, otherwise its default settings (so early stopping on a tenth of the
  train half above 10^4 training rows, none below).  Trees cut each feature at its
  own quantiles, so heavy tails, narrow spikes and sharp edges (the micrometre-scale
  beam spot, a clamp, a quantile map's kink) are seen without any preprocessing.  At
  a few thousand rows a side, 200 trees also fit noise, which costs power (measured:
  0.59 where the best classifier reaches 0.64); the AUC is never above the best.
* `classifier_auc`: a small torch MLP on features standardised by the reference;
  weaker on such structure (it is kept for continuity with earlier reports).

`gbt_feature_aucs` runs the tree test on each feature alone and `gbt_pair_aucs` on
each pair, so the culprit of a high AUC is visible (a pair well above both of its
single features points at a wrong correlation).  `auc_null_sigma` is the standard
deviation of the AUC of a useless classifier on the test halves, the scale for
reading any of these numbers.

Per-row weights enter training as sample weights and the AUC as weighted counts.
scikit-learn is imported lazily (``pip install 'shipfastsim[validation]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from shipfastsim.validation.features import PHYSICS_FEATURES

__all__ = ["PHYSICS_FEATURES", "GBT_ITERATIONS", "GBT_THREADS", "unit_weights", "weighted_auc", "two_sample_split",
           "auc_null_sigma", "classifier_auc", "gbt_auc", "gbt_feature_aucs", "gbt_pair_aucs"]

#: Boosting iterations of the tree test.
GBT_ITERATIONS = 200
#: OpenMP threads of one tree fit: its OpenMP loops are short, and on a shared or busy
#: machine spinning threads slow it down many times; 1 also keeps the result independent
#: of the machine.  Set to None for all cores.
GBT_THREADS: int | None = 1


def unit_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """``weights`` as float64, or ones when None."""
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ROC AUC of ``scores`` for binary ``labels`` (1 = positive), ties counted half."""
    weights = unit_weights(weights, len(scores))
    order = np.argsort(scores, kind="mergesort")
    s, y, w = scores[order], labels[order].astype(bool), weights[order]
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    neg = np.add.reduceat(np.where(y, 0.0, w), start)
    pos = np.add.reduceat(np.where(y, w, 0.0), start)
    neg_below = np.cumsum(neg) - neg
    area = np.sum(pos * (neg_below + 0.5 * neg))
    return float(area / (pos.sum() * neg.sum()))


def two_sample_split(reference: np.ndarray, candidate: np.ndarray, wr: np.ndarray | None,
                     wc: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, labels, weights, is_train)`` of the labelled, equal-size, half-split two-sample problem.

    n = min(len(reference), len(candidate)) random rows of each; weights normalised to
    mean 1 on each side; ``is_train`` marks n // 2 random rows of each side.
    """
    reference, candidate = np.atleast_2d(reference.T).T, np.atleast_2d(candidate.T).T
    rng = np.random.default_rng(seed)
    n = min(len(reference), len(candidate))
    ir, ic = rng.permutation(len(reference))[:n], rng.permutation(len(candidate))[:n]
    x = np.concatenate([reference[ir], candidate[ic]])
    labels = np.concatenate([np.zeros(n), np.ones(n)])
    w = np.concatenate([unit_weights(wr, len(reference))[ir], unit_weights(wc, len(candidate))[ic]])
    w[:n] /= w[:n].mean()
    w[n:] /= w[n:].mean()
    is_train = np.zeros(2 * n, bool)
    is_train[np.concatenate([rng.permutation(n)[: n // 2], n + rng.permutation(n)[: n // 2]])] = True
    return x, labels, w, is_train


def auc_null_sigma(n_reference: int, n_candidate: int) -> float:
    """Standard deviation of the test-half AUC of a classifier that has learnt nothing
    (Mann-Whitney null: sqrt((n0 + n1 + 1) / (12 n0 n1)) with n0 = n1 = n - n // 2 test rows per side)."""
    n = min(n_reference, n_candidate)
    m = n - n // 2
    return float(np.sqrt((2 * m + 1) / (12.0 * m * m))) if m else float("nan")


def classifier_auc(reference: np.ndarray, candidate: np.ndarray, wr: np.ndarray | None = None,
                   wc: np.ndarray | None = None, seed: int = 0, epochs: int = 30, hidden: int = 64) -> float:
    """MLP two-sample test: AUC on the test halves of a 2-hidden-layer ReLU MLP (Adam, weighted BCE)
    trained on the train halves, features standardised by the reference's mean and standard deviation."""
    import torch  # not at module level: the ``validate`` parser imports this module for its defaults

    x, y, w, is_train = two_sample_split(reference, candidate, wr, wc, seed)
    mean, std = reference.mean(0), reference.std(0) + 1e-12
    x = (x - mean) / std
    torch_gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                  torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    xt, yt, wt = (torch.as_tensor(v[is_train], dtype=torch.float32) for v in (x, y, w))
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        for rows in torch.randperm(len(xt), generator=torch_gen).split(256):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[rows]).squeeze(1), yt[rows],
                                                                        weight=wt[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        scores = net(torch.as_tensor(x[~is_train], dtype=torch.float32)).squeeze(1).numpy()
    return weighted_auc(scores, y[~is_train], w[~is_train])


def _boosted_trees(iterations: int, seed: int):
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError as error:  # optional dependency
        raise ImportError("the boosted-trees two-sample test needs scikit-learn: "
                          "pip install 'shipfastsim[validation]' (or scikit-learn)") from error
    return HistGradientBoostingClassifier(max_iter=iterations, random_state=seed)


def gbt_auc(reference: np.ndarray, candidate: np.ndarray, wr: np.ndarray | None = None,
            wc: np.ndarray | None = None, seed: int = 0, iterations: int = GBT_ITERATIONS) -> float:
    """Boosted-trees two-sample test: test-half AUC of ``HistGradientBoostingClassifier``
    (at most ``iterations`` trees, default settings) trained on the train halves (rows = samples)."""
    x, y, w, is_train = two_sample_split(np.asarray(reference, np.float64), np.asarray(candidate, np.float64),
                                         wr, wc, seed)
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    model = _boosted_trees(iterations, seed)
    with threadpool_limits(GBT_THREADS, user_api="openmp"):
        model.fit(x[is_train], y[is_train], sample_weight=w[is_train])
        scores = model.decision_function(x[~is_train])
    return weighted_auc(scores, y[~is_train], w[~is_train])


def gbt_feature_aucs(reference: np.ndarray, candidate: np.ndarray, names: Sequence[str],
                     wr: np.ndarray | None = None, wc: np.ndarray | None = None, seed: int = 0,
                     iterations: int = GBT_ITERATIONS) -> dict[str, float]:
    """`gbt_auc` of each feature (column) alone: name -> AUC."""
    return {name: gbt_auc(reference[:, j], candidate[:, j], wr, wc, seed, iterations) for j, name in enumerate(names)}


def gbt_pair_aucs(reference: np.ndarray, candidate: np.ndarray, names: Sequence[str],
                  wr: np.ndarray | None = None, wc: np.ndarray | None = None, seed: int = 0,
                  iterations: int = GBT_ITERATIONS) -> dict[str, float]:
    """`gbt_auc` of every pair of features: ``"a*b"`` -> AUC."""
    return {f"{names[i]}*{names[j]}": gbt_auc(reference[:, [i, j]], candidate[:, [i, j]], wr, wc, seed, iterations)
            for i, j in combinations(range(len(names)), 2)}
