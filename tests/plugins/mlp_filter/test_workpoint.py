"""Working point, recall bound and Russian roulette against hand and textbook values."""

import numpy as np
import pytest
import torch
from scipy.stats import binom

from shipfastsim.plugins.mlp_filter.workpoint import (
    filter_figures,
    recall_lower_bound,
    reduction_ceiling,
    roulette,
    threshold_for_recall,
)


def test_plain_threshold_keeps_the_target_fraction():
    scores = np.arange(1, 101) / 100.0  # 0.01 .. 1.00
    # Recall 0.9 of 100 needs the 90 highest: 0.11 .. 1.00.
    assert threshold_for_recall(scores, 0.9) == pytest.approx(0.11)
    assert threshold_for_recall(scores, 0.905) == pytest.approx(0.10)
    assert threshold_for_recall(scores[::-1], 1.0) == pytest.approx(0.01)


def test_clopper_pearson_bound_is_the_binomial_tail_limit():
    # The lower bound L at confidence c solves P(X >= k | n, L) = 1 - c (X binomial).
    for k, n, c in ((995, 1000, 0.9), (400, 400, 0.9), (30, 50, 0.95)):
        low = float(recall_lower_bound(k, n, c))
        assert binom.sf(k - 1, n, low) == pytest.approx(1 - c, rel=1e-6)
    # All n kept: L = (1 - c)^(1/n) (hand formula).
    assert float(recall_lower_bound(400, 400, 0.9)) == pytest.approx(0.1 ** (1 / 400), rel=1e-12)


def test_confident_threshold_is_lower_and_impossible_bounds_raise():
    scores = np.linspace(0, 1, 1000)
    plain, confident = threshold_for_recall(scores, 0.99), threshold_for_recall(scores, 0.99, 0.9)
    assert confident < plain
    kept = int((scores >= confident).sum())
    assert recall_lower_bound(kept, 1000, 0.9) >= 0.99 > recall_lower_bound(kept - 1, 1000, 0.9)
    with pytest.raises(ValueError, match="cannot show a recall of 0.99"):
        threshold_for_recall(scores[:100], 0.99, 0.9)  # (0.1)^(1/100) = 0.977 < 0.99


def test_figures_by_hand():
    scores = np.array([0.9, 0.8, 0.1, 0.05, 0.5])
    dangerous = np.array([True, False, True, False, False])
    weight = np.array([1.0, 1.0, 2.0, 4.0, 1.0])
    f = filter_figures(scores, dangerous, weight, 0.5)
    assert f.recall == pytest.approx(1 / 3) and f.reduction == pytest.approx(9 / 3)
    assert f.ideal_reduction == pytest.approx(9 / 3) and f.dangerous_fraction == pytest.approx(1 / 3)


def test_roulette_keeps_passed_and_draws_the_rest_with_probability_q():
    n, q = 200_000, 0.2
    passed = torch.arange(n) % 4 == 0
    weight = torch.full((n,), 3.0, dtype=torch.float64)
    keep, new = roulette(passed, weight, q, torch.Generator().manual_seed(1))
    assert keep[passed].all() and (new[passed] == 3.0).all()
    below = ~passed
    fraction = keep[below].double().mean().item()
    assert abs(fraction - q) < 4 * np.sqrt(q * (1 - q) / int(below.sum()))
    assert torch.all(new[below & keep] == 3.0 / q) and torch.all(new[below & ~keep] == 0)
    again, _ = roulette(passed, weight, q, torch.Generator().manual_seed(1))
    assert torch.equal(keep, again), "same seed, same decision"


def test_reduction_ceiling_bounds_the_oracle_filter():
    """The best possible filter (ranking by the true p(x)) stays below the ceiling computed
    from c = E[p | dangerous] = E[p^2] / E[p]; for a two-valued p it is within 1/r of it."""
    rng = np.random.default_rng(4)
    for p in (rng.beta(0.05, 40.0, 400_000), np.where(rng.random(400_000) < 0.01, 0.05, 0.0)):
        d, c = p.mean(), (p**2).mean() / p.mean()
        order = np.sort(p)[::-1]
        for recall in (0.9, 0.99):
            kept = np.searchsorted(np.cumsum(order), recall * p.sum()) + 1
            oracle, ceiling = len(p) / kept, reduction_ceiling(c, d, recall)
            print(f"c {c:.4f} D {d:.2e} recall {recall}: oracle {oracle:.1f}, ceiling {ceiling:.1f}")
            assert oracle <= ceiling * (1 + 1e-9)
    assert oracle == pytest.approx(ceiling * recall, rel=1e-3)  # two-valued p: mu(S) = r D / c
