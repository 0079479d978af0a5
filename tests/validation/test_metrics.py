"""Validation metrics on distributions with known answers, and the report writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch

from shipfastsim.batch import MuonBatch
from shipfastsim.validation.metrics import (
    MUON_FEATURES,
    PHYSICS_FEATURES,
    compare,
    feature_arrays,
    fpd,
    frechet_distance,
    kpd,
    ks_statistic,
    wasserstein1,
)
from shipfastsim.validation.split import SPLITS, split_mask


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(12345)


def test_w1_of_shifted_gaussians_is_the_shift(rng):
    a, b = rng.normal(size=20000), rng.normal(size=20000) + 0.3
    assert wasserstein1(a, b) == pytest.approx(0.3, abs=0.02)


def test_weighted_w1_and_ks_equal_repeated_samples(rng):
    a, b = rng.normal(size=300), rng.normal(size=400)
    wa = rng.integers(1, 4, size=300)
    assert wasserstein1(a, b, wa.astype(float)) == pytest.approx(wasserstein1(np.repeat(a, wa), b), rel=1e-9)
    assert ks_statistic(a, b, wa.astype(float)) == pytest.approx(ks_statistic(np.repeat(a, wa), b), rel=1e-9)


def test_ks_matches_scipy(rng):
    a, b = rng.normal(size=1000), rng.normal(0.1, 1.2, size=1500)
    assert ks_statistic(a, b) == pytest.approx(scipy.stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_frechet_distance_of_shifted_gaussians(rng):
    a, b = rng.normal(size=(50000, 2)), rng.normal(size=(50000, 2)) + np.array([0.5, 0.0])
    assert frechet_distance(a, b) == pytest.approx(0.25, abs=0.02)


def test_fpd_extrapolates_to_zero_for_identical_distributions(rng):
    a, b = rng.normal(size=(5000, 4)), rng.normal(size=(5000, 4))
    value, error = fpd(a, b)
    biased = frechet_distance(a[:1000], b[:1000])
    print(f"FPD={value:.5f}+-{error:.5f}, finite-N value {biased:.5f}")
    assert abs(value) < max(3 * error, 2e-3)
    assert abs(value) < biased  # the 1/N bias is removed
    shifted, _ = fpd(a, b + 0.2)
    assert shifted == pytest.approx(4 * 0.04, rel=0.25)


def test_kpd_zero_for_same_positive_for_different(rng):
    a, b = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3))
    same, error = kpd(a, b)
    different, _ = kpd(a, b * 1.3)
    assert abs(same) < 5 * error + 1e-3
    assert different > 10 * max(abs(same), error)


def test_compare_on_muon_batches_and_arrays(rng):
    def batch(n, shift=0.0):
        return MuonBatch.from_columns({
            "pdg_id": rng.choice([13, -13], n), "x": rng.normal(size=n), "y": rng.normal(size=n),
            "z": rng.exponential(30, n), "px": rng.normal(size=n) + shift, "py": rng.normal(size=n),
            "pz": rng.exponential(60, n) + 10})

    metrics = compare(batch(3000), batch(3000, 0.5), classifier_epochs=5)
    assert metrics.features == MUON_FEATURES
    assert metrics.per_feature["px"].w1_over_sigma > 0.3 > metrics.per_feature["pz"].w1_over_sigma
    assert metrics.auc > 0.55
    # px shifted by sigma / 2: the best AUC is Phi(0.5 / sqrt 2) = 0.64, in px alone and in every set with px
    noise = 4 * metrics.auc_null_sigma
    assert metrics.physics_features == PHYSICS_FEATURES
    assert min(metrics.gbt_auc, metrics.gbt_auc_physics, metrics.per_feature["px"].gbt_auc) > 0.55
    assert abs(metrics.per_feature["pz"].gbt_auc - 0.5) < noise
    for value in (metrics.gbt_auc_ref, metrics.gbt_auc_physics_ref, metrics.per_feature["px"].gbt_auc_ref):
        assert abs(value - 0.5) < 4 * metrics.auc_null_sigma_ref
    assert metrics.fpd > 3 * metrics.fpd_ref
    assert metrics.kpd > metrics.kpd_ref
    x, names, weights = feature_arrays({"a": np.arange(5.0), "b": np.ones(5)})
    assert x.shape == (5, 2) and names == ("a", "b") and weights is None
    assert "| GBT AUC physics (z, px, py, pz, charge) |" in metrics.table()
    assert "| GBT AUC px alone |" in metrics.table()
    without_charge = compare(batch(1000), batch(1000), features=("x", "px"), classifier_epochs=1)
    assert without_charge.physics_features == () and np.isnan(without_charge.gbt_auc_physics)


def test_split_is_fixed_and_disjoint():
    masks = {part: split_mask(100000, part) for part in SPLITS}
    assert np.all(sum(m.astype(int) for m in masks.values()) == 1)
    assert masks["holdout"].mean() == pytest.approx(0.1, abs=0.005)
    assert np.array_equal(split_mask(1000, "holdout"), masks["holdout"][:1000])


def test_report_writes_figures_and_metrics(tmp_path, rng):
    pytest.importorskip("mplhep")
    from shipfastsim.validation.report import write_report

    n = 2000
    columns = {"pdg_id": rng.choice([13, -13], n), "x": rng.normal(size=n), "y": rng.normal(size=n),
               "z": rng.exponential(30, n), "px": rng.normal(size=n), "py": rng.normal(size=n),
               "pz": rng.exponential(60, n) + 10}
    reference = MuonBatch.from_columns(columns)
    candidate = reference.replace(px=reference.px * 1.1, weight=torch.full((n,), 0.5, dtype=torch.float64))
    metrics = write_report(reference, candidate, tmp_path)
    for name in ("features.png", "p_pt.png", "correlations.png", "metrics.json", "metrics.md", "report.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "metrics.json").read_text())["auc"] == metrics.auc


def test_compare_reports_the_effective_sample_sizes(rng):
    """Kish's (sum w)^2 / sum w^2 beside the row counts: 200 rows of w = 1 and 200 of w = 3 give
    800^2 / 2000 = 320 (by hand); an unweighted side its row count."""
    reference, candidate = rng.normal(size=(400, 2)), rng.normal(size=(300, 2))
    weights = np.where(np.arange(400) % 2 == 0, 1.0, 3.0)
    metrics = compare(reference, candidate, reference_weights=weights, classifier_epochs=1, gbt_iterations=5,
                      physics_features=())
    assert metrics.n_reference_effective == pytest.approx(320.0, rel=1e-12)
    assert metrics.n_candidate_effective == 300.0
    assert "| candidate 300 (300) | reference 400 (320) |" in metrics.table()


def test_weighted_correlation_equals_duplicated_rows(rng):
    """Integer weights against the rows repeated: the same correlation matrix (the report's plot)."""
    from shipfastsim.validation.report import _correlation

    x = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 3))
    weights = rng.integers(1, 4, 500).astype(float)
    repeated = np.repeat(x, weights.astype(int), axis=0)
    np.testing.assert_allclose(_correlation(x, weights), np.corrcoef(repeated, rowvar=False), rtol=2e-3)
    np.testing.assert_allclose(_correlation(x, None), np.corrcoef(x, rowvar=False), rtol=1e-12)
