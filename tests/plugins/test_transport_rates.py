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


def test_weighted_per_source_rate_by_hand():
    """Sources of weight 2, 1, 1 with hits (1 of 2), (0 of 2), (2 of 2): r = (2*1 + 0 + 2) /
    (2*2 + 2 + 2) = 0.5; se^2 = 3/2 * ((2*(1 - 1))^2 + (0 - 1)^2 + (2 - 1)^2) / 8^2 = 3/64."""
    hits = np.array([1, 0, 0, 0, 1, 1], bool)
    source = np.array([5, 5, 6, 6, 7, 7])
    weight = np.array([2.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    rate, error = per_source_rate(hits, source, weight)
    assert rate == pytest.approx(0.5, rel=1e-15)
    assert error == pytest.approx(math.sqrt(3 / 64), rel=1e-12)
    unweighted, _ = per_source_rate(hits, source)
    assert unweighted == pytest.approx(3 / 6, rel=1e-15)
    assert per_source_rate(hits, source, 2 * weight) == pytest.approx((rate, error), rel=1e-12)  # scale-free


def test_truth_rate_counts_each_source_with_its_w_and_keeps_the_split(tmp_path):
    """A file of 200 muons whose w is 1 or 4: the truth rate is the w-weighted mean over the
    same transported copies (recomputed here from the copies' labels by hand), and ``keep``
    drops the rows of the other sources."""
    from shipfastsim.adapters.fairship import read_ntuple, write_ntuple
    from shipfastsim.data import HOLDOUT_SAMPLE
    from shipfastsim.plugins.mlp_filter.labels import label_target_muons

    muons = read_ntuple(HOLDOUT_SAMPLE)[0]
    columns = {k: getattr(muons, k).numpy()[:200] for k in ("x", "y", "z", "px", "py", "pz", "pdg_id")}
    w = np.where(np.arange(200) % 3 == 0, 4.0, 1.0)
    from shipfastsim.batch import MuonBatch

    path = tmp_path / "weighted.root"
    write_ntuple(path, MuonBatch.from_columns(columns | {"weight": w, "event_id": np.arange(200)}))
    params = {"files": [str(path)]}
    rates = transported_rates("fairship-file", params, 200, 2, seed=3, chunk=100)
    sample = label_target_muons(200, 2, 3, 100, gan_params=params, generator="fairship-file")
    hits = sample.labels["shield_end"]
    by_hand = (w[sample.group] * hits).sum() / w[sample.group].sum()
    assert rates["shield_end"].rate == pytest.approx(by_hand, rel=1e-12)
    assert abs(by_hand - hits.mean()) > 1e-4  # the weights matter for this sample
    kept = transported_rates("fairship-file", params, 200, 2, seed=3, chunk=100, keep=lambda s: s < 50)
    assert kept["shield_end"].sources == 50 and kept["shield_end"].rows == 100
    first = sample.group < 50
    assert kept["shield_end"].rate == pytest.approx(
        (w[sample.group] * hits)[first].sum() / w[sample.group][first].sum(), rel=1e-12)


def test_rate_penalty_by_hand():
    """Pull +-3, beyond the free 1 sigma, costs 0.05 x 2 = 0.1; a pull within it costs nothing."""
    from shipfastsim.plugins.gan_target.transport_rates import RateSelection

    truth = TransportedRate("P1", 1.0e-3, 0.03e-3, 0, 0, 0, 0)
    selection = RateSelection("flow-target", truth, 1000, 2, 1)
    far = TransportedRate("P1", 1.0e-3 + 3 * 0.05e-3, 0.04e-3, 0, 0, 0, 0)
    penalty, ratio = selection.penalty(far)
    assert ratio["pull"] == pytest.approx(3.0, rel=1e-12)
    assert penalty == pytest.approx(0.1, rel=1e-12)
    below = TransportedRate("P1", 1.0e-3 - 3 * 0.05e-3, 0.04e-3, 0, 0, 0, 0)
    assert selection.penalty(below)[0] == pytest.approx(0.1, rel=1e-12)  # too few costs as much as too many
    near = TransportedRate("P1", 1.0e-3 - 0.9 * 0.05e-3, 0.04e-3, 0, 0, 0, 0)
    assert selection.penalty(near)[0] == 0.0


def test_trainer_selects_on_the_transported_rate(tmp_path):
    """A tiny flow-target trained with the rate criterion (shield-end rate, to have counts on
    a few thousand muons): every validation records its transported rate against the truth of
    the files' train and validation muons, its score is the distributions' score plus the
    penalty by hand, and the saved model is the one of the lowest total."""
    from shipfastsim.data import HOLDOUT_SAMPLE
    from shipfastsim.plugins.flow_target.model import FlowConfig
    from shipfastsim.plugins.flow_target.train import FlowTrainConfig, train_flow
    from shipfastsim.validation.split import split_codes

    config = FlowTrainConfig(seed=3, batch_size=256, max_steps=120, eval_every=40, val_generated=2000,
                             select_on_trees=False, flow=FlowConfig(couplings=2, hidden=16, layers=1),
                             rate_generated=3000, rate_copies=1, rate_truth_copies=1, rate_label="shield_end")
    result = train_flow([HOLDOUT_SAMPLE], tmp_path, config, progress=False)
    split = split_codes(4908) < 0.9
    truth = transported_rates("fairship-file", {"files": [str(HOLDOUT_SAMPLE)]}, 4908, 1, config.seed + 2,
                              keep=lambda source: split[source])["shield_end"]
    assert len(result.history) == 3
    for entry in result.history:
        rate = entry["val_transported_rate"]
        assert rate["truth"] == pytest.approx(truth.rate, rel=1e-12) and truth.sources == split.sum()
        assert rate["pull"] == pytest.approx((rate["rate"] - truth.rate) / math.hypot(rate["error"], truth.error),
                                             rel=1e-9)
        assert rate["penalty"] == pytest.approx(0.05 * max(abs(rate["pull"]) - 1.0, 0.0), rel=1e-12, abs=1e-15)
        assert entry["val_score"] == pytest.approx(entry["val_distribution_score"] + rate["penalty"], rel=1e-12)
    best = min(result.history, key=lambda entry: entry["val_score"])
    assert result.best_step == best["step"]
