"""After-transport rates of target generators: the per-source-muon standard error, by hand and by
simulation, and the chain on a few hundred muons (the 5 % figure itself is measured by
benchmarks/target_rates.py, not here)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shipfastsim.plugins.gan_target.transport_rates import (
    TransportedRate,
    per_source_rate,
    rate_ratio,
    transported_rates,
)


def test_per_source_error_by_hand():
    """4 source muons x 3 copies, hits (1,1,0), (0,0,0), (1,0,0), (0,0,0): rate 3/12 and, with
    equal copies, se = std(K_s / 3, ddof=1) / sqrt(4) = 0.159571... (not the binomial 0.125)."""
    hits = np.array([1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], bool)
    source = np.repeat([7, 3, 9, 4], 3)
    rate, error = per_source_rate(hits, source)
    assert rate == pytest.approx(0.25, rel=1e-15)
    per_source = np.array([2, 0, 1, 0]) / 3
    assert error == pytest.approx(per_source.std(ddof=1) / 2, rel=1e-12)
    assert error == pytest.approx(0.1595712, rel=1e-6)
    assert error > math.sqrt(0.25 * 0.75 / 12)  # correlated copies: more than the binomial error


def test_per_source_error_matches_the_spread_of_repeated_experiments():
    """Copies of one muon share its pass probability (drawn per source from a Beta with most
    sources near 0): over 400 repeated experiments the mean estimated error equals the
    standard deviation of the rate within 10 % (3.5 % statistical), while the binomial
    error over rows is 1.6 times too small."""
    rng = np.random.default_rng(4)
    n_sources, copies = 2000, 10
    source = np.repeat(np.arange(n_sources), copies)
    rates, errors = [], []
    for _ in range(400):
        probability = np.repeat(rng.beta(0.05, 5.0, n_sources), copies)
        rate, error = per_source_rate(rng.random(len(source)) < probability, source)
        rates.append(rate)
        errors.append(error)
    spread = np.std(rates, ddof=1)
    assert np.mean(errors) == pytest.approx(spread, rel=0.10)
    binomial = math.sqrt(np.mean(rates) * (1 - np.mean(rates)) / len(source))
    assert binomial < 0.75 * spread


def test_rate_ratio_and_pull_by_hand():
    a = TransportedRate("P1", 1.1e-3, 0.05e-3, 0, 0, 0, 0)
    b = TransportedRate("P1", 1.0e-3, 0.04e-3, 0, 0, 0, 0)
    ratio = rate_ratio(a, b)
    assert ratio["ratio"] == pytest.approx(1.1, rel=1e-12)
    assert ratio["ratio_error"] == pytest.approx(1.1 * math.hypot(0.05 / 1.1, 0.04), rel=1e-12)
    assert ratio["pull"] == pytest.approx(0.1e-3 / math.hypot(0.05e-3, 0.04e-3), rel=1e-12)


def test_chain_counts_per_source_muon(holdout_sample):
    """300 truth muons x 3 copies through fast-shield: every copy is counted once, the shield
    end is reached by most, and P2 is within P1 within the shield end."""
    rates = transported_rates("fairship-file", {"files": [str(holdout_sample)]}, 300, 3, seed=2, chunk=150)
    assert set(rates) == {"shield_end", "P1", "P2"}
    for rate in rates.values():
        assert rate.rows == 900 and rate.sources == 300
        assert rate.rate == pytest.approx(rate.hits / 900, rel=1e-12)
    assert 0.3 < rates["shield_end"].rate <= 1.0 and rates["shield_end"].error > 0
    assert rates["P2"].hits <= rates["P1"].hits <= rates["shield_end"].hits
