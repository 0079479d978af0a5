"""Training on a synthetic problem whose true probability is known: calibration,
working point, class imbalance, weights round trip."""

import json

import numpy as np
import pytest
import torch

from shipfastsim.cli import main
from shipfastsim.components import ChunkContext
from shipfastsim.config import make_stage
from shipfastsim.plugins.mlp_filter.cli import HOLDOUT_NAME
from shipfastsim.plugins.mlp_filter.labels import load_labelled, save_labelled, stratified_subsample
from shipfastsim.plugins.mlp_filter.model import load_filter
from shipfastsim.plugins.mlp_filter.train import TrainConfig, score, split_of, train_filter
from shipfastsim.registry import get_registry
from tests.plugins.mlp_filter.conftest import as_batch, synthetic_sample, true_probability


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    sample = synthetic_sample(60_000, seed=5)
    config = TrainConfig(hidden=24, layers=2, epochs=8, patience=8, batch_size=1024, lr=1e-2, recall=0.9,
                         confidence=0.9, negative_fraction=0.5)
    output = tmp_path_factory.mktemp("mlp_filter")
    return sample, train_filter(sample, output, config, progress=False), config


def test_calibrated_probabilities_match_the_truth_on_the_holdout(trained):
    sample, result, _ = trained
    holdout = sample.select(split_of(sample, "holdout"))
    predicted, truth = score(result.net, holdout.state), true_probability(holdout.state)
    # Calibration: in bins of the prediction, the mean true probability equals the mean prediction.
    edges = np.quantile(predicted, [0.0, 0.9, 0.97, 0.99, 1.0])
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        m = (predicted >= low) & (predicted <= high)
        print(f"true {truth[m].mean():.4f} predicted {predicted[m].mean():.4f} ({m.sum()} rows)")
        assert predicted[m].mean() == pytest.approx(truth[m].mean(), rel=0.3, abs=2e-3)
    # Without calibration the class-weighted scores overestimate the rare class many times.
    raw = 1 / (1 + np.exp(-score(result.net, holdout.state, calibrated=False)))
    assert raw.mean() > 3 * truth.mean()
    assert predicted.sum() == pytest.approx(truth.sum(), rel=0.15)


def test_working_point_meets_the_recall_on_validation_and_is_saved(trained):
    sample, result, config = trained
    sidecar = json.loads(result.weights_path.with_suffix(".json").read_text())
    threshold = sidecar["working_point"]["threshold"]
    val = sample.select(split_of(sample, "validation"))
    p = score(load_filter(result.weights_path), val.state)
    recall = (p[val.labels["P1"]] >= threshold).mean()
    assert recall >= config.recall and result.validation["recall"] == pytest.approx(recall)
    figures = result.validation
    print(f"validation reduction {figures['reduction']:.2f} (ideal {figures['ideal_reduction']:.1f})")
    assert figures["reduction"] > 3, "far better than keeping everything"
    assert sidecar["label"] == "P1" and sidecar["training"]["hidden"] == 24
    assert len(sidecar["validation_positive_scores"]) == int(val.labels["P1"].sum())


def test_weights_round_trip_gives_the_same_log_odds(trained):
    _, result, _ = trained
    state = torch.tensor(synthetic_sample(500, seed=9).state)
    loaded = load_filter(result.weights_path)
    assert torch.equal(loaded(state), result.net(state))


def test_labelled_file_round_trip_and_unbiased_subsample(tmp_path):
    sample = synthetic_sample(20_000, seed=2)
    probability = np.where(sample.labels["P1"], 1.0, 0.1)
    small = stratified_subsample(sample, probability, seed=3)
    assert small.labels["P1"].sum() == sample.labels["P1"].sum()
    for name in ("shield_end", "P2"):  # weighted counts estimate the full sample's
        full, est = sample.labels[name].sum(), small.weight[small.labels[name]].sum()
        assert est == pytest.approx(full, rel=0.1)
    assert small.weight.sum() == pytest.approx(len(sample), rel=0.05)
    back = load_labelled(save_labelled(small, tmp_path / "s.npz"))
    assert np.array_equal(back.state, small.state) and np.array_equal(back.weight, small.weight)
    assert all(np.array_equal(back.labels[k], small.labels[k]) for k in small.labels)
    assert back.meta["subsample"]["of"] == len(sample)


def test_train_command_writes_a_usable_filter(tmp_path):
    """``shipfastsim train mlp-filter --input FILE``: weights, sidecar and holdout copy that a
    filter stage loads."""
    sample = synthetic_sample(50_000, seed=8)
    made_from = {"geometry": {"name": "G", "digest": "sha256:0"}, "truth": {"propagator": "reference-shield"},
                 "target_generator": None, "sample_seeds": [8]}
    sample.meta["provenance"] = made_from
    data = save_labelled(sample, tmp_path / "labelled.npz")
    status = main(["train", "mlp-filter", "--input", str(data), "--output", str(tmp_path / "out"), "--max-steps", "2",
                   "--hidden", "8", "--layers", "1", "--quiet"])
    assert status == 0
    weights = tmp_path / "out" / "mlp_filter.safetensors"
    sidecar = json.loads(weights.with_suffix(".json").read_text())
    assert sidecar["training"]["epochs"] == 2 and sidecar["architecture"] == {"hidden": 8, "layers": 1}
    provenance = sidecar["provenance"]  # the sample's record, with what the training learnt from it
    assert {k: provenance[k] for k in made_from} == made_from
    assert provenance["seed"] == sidecar["training"]["seed"] and provenance["sample_size"] == 50_000
    holdout = load_labelled(tmp_path / "out" / HOLDOUT_NAME)
    assert holdout.meta["split"] == "holdout" and holdout.labels["P1"].any()
    stage = make_stage("filter", "mlp-filter", {"weights": str(weights), "mode": "cut"})
    context = ChunkContext(0, 0, torch.Generator().manual_seed(0), torch.device("cpu"))
    decision = get_registry().hook.shipfastsim_filter_muons(stage=stage, batch=as_batch(holdout), context=context)
    assert decision.keep[torch.as_tensor(holdout.labels["P1"])].float().mean() > 0.9


def test_weighted_sample_trains_to_the_population_probability(tmp_path):
    """Negatives kept with probability 1/4 and weight 4 (the dangerous muons all kept, weight 1):
    trained with the row weights, the calibrated probabilities sum to the population's true
    ones on a holdout of the unthinned sample; a trainer ignoring the weights would see four
    times too many dangerous muons per negative and predict about 4x too much."""
    population = synthetic_sample(60_000, seed=8)
    thinned = stratified_subsample(population, np.where(population.labels["P1"], 1.0, 0.25), seed=3)
    config = TrainConfig(hidden=24, layers=2, epochs=8, patience=8, batch_size=1024, lr=1e-2, recall=0.9,
                         confidence=0.9, negative_fraction=1.0)
    result = train_filter(thinned, tmp_path, config, progress=False)
    holdout = population.select(split_of(population, "holdout"))
    predicted, truth = score(result.net, holdout.state), true_probability(holdout.state)
    assert predicted.sum() == pytest.approx(truth.sum(), rel=0.15)
