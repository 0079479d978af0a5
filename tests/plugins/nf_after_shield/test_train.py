"""Tiny trainings: the structured loss orders the latent, the zuko peer side by side, the train command."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from shipfastsim.cli import main
from shipfastsim.plugins.nf_after_shield.data import TrainingData, split_indices
from shipfastsim.plugins.nf_after_shield.model import FlowConfig, load_flow
from shipfastsim.plugins.nf_after_shield.train import TrainConfig, mirrored_in_y, prepare, train_flow


@pytest.fixture(scope="module")
def small_data(holdout) -> TrainingData:
    """The shipped holdout rows as a small training set (P1-rich: every holdout P1 row is in it)."""
    return TrainingData(holdout["state"].astype(np.float64), holdout["label"], len(holdout["label"]), 0.0, 3148.66,
                        holdout["event_id"])


def _tiny(sigmas) -> TrainConfig:
    return TrainConfig(steps=150, batch_size=256, subset_batch=64, lambdas=(1.0, 1.0), eval_every=50,
                       flow=FlowConfig(layers=4, hidden=16, sigmas=sigmas))


def _latent_ratio(result, data) -> float:
    """Mean |z|^2 of the training P1 rows over that of all training rows."""
    g, q, label = prepare(result.flow, data, split_indices(data.groups())["train"])
    z, _ = result.flow.g_to_latent(g, q)
    r2 = (z * z).sum(1)
    return float(r2[torch.as_tensor(label >= 1)].mean() / r2.mean())


def test_structured_loss_pulls_the_dangerous_muons_to_the_latent_core(small_data):
    structured = _latent_ratio(train_flow(small_data, _tiny((1.0, 0.5, 0.35))), small_data)
    plain = _latent_ratio(train_flow(small_data, _tiny((1.0, 1.0, 1.0))), small_data)
    print(f"mean |z|^2 of P1 / all: structured {structured:.3f}, sigmas all 1 {plain:.3f}")
    assert structured < 0.7 * plain


def test_zuko_peer_trains_on_the_same_data_and_loss(small_data):
    ours = train_flow(small_data, _tiny((1.0, 0.5, 0.35)))
    peer = train_flow(small_data, _tiny((1.0, 0.5, 0.35)), peer=True)
    print(f"validation structured loss after 150 steps: ours {ours.best_loss:.3f} "
          f"({sum(p.numel() for p in ours.flow.parameters())} parameters), zuko RealNVP {peer.best_loss:.3f} "
          f"({peer.flow.parameter_count()} parameters)")
    assert np.isfinite(peer.best_loss) and np.isfinite(ours.best_loss)
    assert ours.best_loss < peer.best_loss + 0.5  # same size, same budget: no worse than the peer


def test_train_command_writes_weights_json_and_validation(small_data, tmp_path):
    made_from = {"geometry": {"name": "G", "digest": "sha256:0"}, "truth": {"propagator": "reference-shield"},
                 "target_generator": None, "sample_seeds": [3]}
    dataclasses.replace(small_data, provenance=json.dumps(made_from)).save(tmp_path / "data.npz")
    code = main(["train", "nf-after-shield", "--input", str(tmp_path / "data.npz"), "--output", str(tmp_path / "m"),
                 "--max-steps", "20", "--eval-every", "10", "--batch-size", "128", "--quiet"])
    assert code == 0
    document = json.loads((tmp_path / "m" / "nf_after_shield.json").read_text())
    assert document["data"]["rows_at_shield_end"] == len(small_data.label)
    provenance = document["provenance"]  # the sample's record, with the rows and seed of the training
    assert {k: provenance[k] for k in made_from} == made_from
    assert provenance["sample_size"] == len(small_data.label) and provenance["seed"] == document["training"]["seed"]
    assert "P0" in {r["subset"] for r in document["validation"]["fidelity"]}
    assert {r["subset"] for r in document["validation"]["enrichment"]} == {"P0", "P1", "P2"}
    flow = load_flow(tmp_path / "m" / "nf_after_shield.safetensors")
    assert flow.config.sigmas == TrainConfig().flow.sigmas


def test_mirrored_in_y_appends_the_copies_with_their_labels_and_groups(small_data):
    rows = np.array([0, 5, 7])
    out, train = mirrored_in_y(small_data, rows)
    n = len(small_data.label)
    assert len(out.label) == n + 3 and list(train) == [0, 5, 7, n, n + 1, n + 2]
    expected = small_data.state[rows] * np.array([1.0, -1.0, 1.0, -1.0, 1.0, 1.0])
    np.testing.assert_array_equal(out.state[n:], expected)
    np.testing.assert_array_equal(out.state[:n], small_data.state)
    np.testing.assert_array_equal(out.label[n:], small_data.label[rows])
    np.testing.assert_array_equal(out.groups()[n:], small_data.groups()[rows])


def _one_sided(data: TrainingData) -> TrainingData:
    """``data`` with every muon moved to y > 0 (|y|, py sign-matched) and the muons of its
    inner holdout split all made mu+."""
    state = data.state.copy()
    sign = np.sign(state[:, 1])
    state[:, 1] *= sign
    state[:, 3] *= sign
    state[split_indices(data.groups())["holdout"], 5] = 1.0
    return TrainingData(state, data.label, data.n_target, 0.0, data.z_plane, data.event_id)


@pytest.mark.parametrize("options", [{}, {"mirror_y": True}, {"train_on_holdout_split": True}])
def test_training_options_reach_the_training_rows(small_data, options):
    """``mirror_y``: a flow trained on muons all at y > 0 makes about half at y < 0 (none
    without); ``train_on_holdout_split``: the inner holdout split, all mu+, enters the
    trained mu+ fraction."""
    data = _one_sided(small_data)
    split = split_indices(data.groups())
    rows = np.concatenate([split["train"], split["holdout"]]) if options.get("train_on_holdout_split") \
        else split["train"]
    config = TrainConfig(steps=100, batch_size=256, subset_batch=0, lambdas=(0.0, 0.0), eval_every=50,
                         flow=FlowConfig(layers=2, hidden=8), **options)
    flow = train_flow(data, config).flow
    assert flow.config.fraction_mu_plus == pytest.approx(float((data.state[rows, 5] > 0).mean()), rel=1e-9)
    if options.get("train_on_holdout_split"):  # the two fractions differ enough to tell apart
        assert flow.config.fraction_mu_plus > float((data.state[split["train"], 5] > 0).mean()) + 0.05
    with torch.no_grad():
        y = flow.sample_physics(torch.randn(4000, 5), -torch.ones(4000, 1))[:, 1]
    assert torch.isfinite(y).all()
    below = float((y < 0).float().mean())
    assert (0.4 < below < 0.6) if options.get("mirror_y") else below < 0.05, below


def _short() -> TrainConfig:
    return TrainConfig(steps=20, batch_size=128, subset_batch=32, eval_every=10, flow=FlowConfig(layers=2, hidden=8))


def test_equal_row_weights_train_exactly_as_unweighted(small_data):
    from dataclasses import replace

    plain = train_flow(small_data, _short())
    equal = train_flow(replace(small_data, weight=np.full(len(small_data.label), 2.5)), _short())
    for key, value in plain.flow.state_dict().items():
        torch.testing.assert_close(equal.flow.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_row_weights_reach_the_charge_fraction_maps_and_whitening(small_data):
    """mu+ rows of weight 3, mu- of weight 1: the flow's mu+ fraction is 3 n+ / (3 n+ + n-) of the
    train split (by hand), and its whitening mean the weighted mean of the Gaussianised rows."""
    from dataclasses import replace

    weight = np.where(small_data.state[:, 5] > 0, 3.0, 1.0)
    result = train_flow(replace(small_data, weight=weight), _short())
    train = split_indices(small_data.groups())["train"]
    n_plus = int((small_data.state[train, 5] > 0).sum())
    assert result.flow.config.fraction_mu_plus == pytest.approx(3 * n_plus / (3 * n_plus + len(train) - n_plus),
                                                                rel=1e-12)
    g, q, _ = prepare(result.flow, small_data, train)
    for index, sign in enumerate((-1.0, 1.0)):
        rows = (q[:, 0] == sign).numpy()
        # one charge has one weight: its weighted mean is the plain mean (the maps, though, are weighted)
        np.testing.assert_allclose(result.flow.white_mean[index].numpy(), g[rows].double().numpy().mean(0),
                                   rtol=1e-5, atol=1e-6)


def test_weighted_whitening_equals_duplicated_rows():
    """Integer weights 1 or 2 against the rows duplicated: same mean (exactly) and covariance
    (to the 1 / n difference between reliability and frequency weights)."""
    from shipfastsim.plugins.nf_after_shield.model import MuonFlow

    rng = np.random.default_rng(3)
    g = rng.normal(size=(4000, 5)) @ rng.normal(size=(5, 5))
    charge = np.where(rng.random(4000) < 0.5, 1.0, -1.0)
    weight = np.where(rng.random(4000) < 0.3, 2.0, 1.0)
    weighted, duplicated = MuonFlow(FlowConfig()), MuonFlow(FlowConfig())
    weighted.fit_whitening(g, charge, weight)
    again = np.repeat(np.arange(4000), weight.astype(int))
    duplicated.fit_whitening(g[again], charge[again])
    torch.testing.assert_close(weighted.white_mean, duplicated.white_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weighted.white_chol, duplicated.white_chol, rtol=2e-3, atol=0)


def test_patience_stops_after_that_many_validations_without_a_better_loss(small_data):
    """patience 2, a validation every 10 steps: training stops at the second validation after
    the best one, neither of them better, long before its 600 steps (a learning rate of 0.03
    makes the validation loss noisy early; at 0.003 it improves at every one of 60
    validations); the weights kept are the best step's (patience 0, the default, runs every step)."""
    config = dataclasses.replace(_short(), steps=600, patience=2, learning_rate=3e-2)
    result = train_flow(small_data, config)
    steps = [step for step, _ in result.history]
    assert steps[-1] < 600
    assert steps[-1] == result.best_step + 2 * config.eval_every
    after = [value for step, value in result.history if step > result.best_step]
    assert len(after) == 2 and min(after) >= result.best_loss
    assert min(value for _, value in result.history) == result.best_loss
    assert TrainConfig().patience == 0
