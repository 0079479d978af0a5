"""Memorisation check: a fresh sample looks like the holdout, a jittered copy of the training rows does not."""

from __future__ import annotations

import numpy as np
import pytest

from shipfastsim.validation.memorisation import distance_to_closest_record, memorisation_check


def sample(rng, n):
    return np.stack([rng.exponential(20.0, n), rng.normal(0, 0.8, n), rng.normal(0, 0.8, n),
                     10.0 * rng.random(n) ** -0.5, rng.choice([-1.0, 1.0], n)], axis=1)


def test_distance_to_closest_record_by_hand():
    train = np.array([[0.0, 0.0], [10.0, 0.0]])
    query = np.array([[1.0, 0.0], [10.0, 2.0]])
    np.testing.assert_allclose(distance_to_closest_record(train, query, np.array([1.0, 2.0])), [1.0, 1.0])


def test_fresh_sample_is_like_the_holdout():
    rng = np.random.default_rng(3)
    check = memorisation_check(sample(rng, 20000), sample(rng, 5000), sample(rng, 5000))
    assert check.median_ratio == pytest.approx(1.0, abs=0.06)
    assert check.close_fraction == pytest.approx(0.05, abs=0.015)
    assert check.exact_copies == 0


def test_jittered_training_rows_are_caught():
    rng = np.random.default_rng(4)
    train = sample(rng, 20000)
    copies = train[rng.integers(0, len(train), 5000)]
    copies = copies + rng.normal(size=copies.shape) * 0.02 * train.std(0)
    check = memorisation_check(train, sample(rng, 5000), copies)
    assert check.median_ratio < 0.5 and check.close_fraction > 0.3
    assert memorisation_check(train, sample(rng, 5000), train[:100]).exact_copies == 100
