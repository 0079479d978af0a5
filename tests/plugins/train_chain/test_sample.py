"""The chain's transported sample: the same for any number of workers, labels as the
filter's labelling and as straight tracks to the aperture, provenance of what made it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from shipfastsim.plugins.fast_shield import DEFAULT_TABLES
from shipfastsim.plugins.flow_target import BUNDLED_WEIGHTS as FLOW_WEIGHTS
from shipfastsim.plugins.train_chain.sample import SampleSettings, make_sample
from tests.plugins.train_chain.conftest import APERTURE

FIELDS = ("target", "event_id", "weight", "at_end", "end", "label")


@pytest.fixture(scope="module")
def settings(vessel_geometry) -> SampleSettings:
    return SampleSettings(geometry=str(vessel_geometry), truth="fast-shield", muons=900, copies=2, seed=3, chunk=300)


@pytest.fixture(scope="module")
def two_workers(settings):
    return make_sample(settings, workers=2)


def test_the_sample_does_not_depend_on_the_number_of_workers(settings, two_workers):
    one = make_sample(settings, workers=1)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(one, name), getattr(two_workers, name), err_msg=name)
    assert len(one.label) == 900 * 2
    assert sorted(set(one.event_id.tolist())) == list(range(900))  # every generated muon, each in its copies


def test_labels_equal_the_filter_recipe_on_the_same_seeds(settings, two_workers):
    """fast-shield truth, flow-target: the same chunk seeds as mlp-filter's labelling recipe
    (`label_target_muons`, serial, its own transport), so the same labels row for row."""
    from shipfastsim.plugins.mlp_filter.labels import label_target_muons

    recipe = label_target_muons(settings.muons, copies=settings.copies, seed=settings.seed, chunk=settings.chunk,
                                shield_params={"geometry": settings.geometry}, generator="flow-target")
    labelled = two_workers.labelled()
    np.testing.assert_array_equal(labelled.state, recipe.state)
    np.testing.assert_array_equal(labelled.group, recipe.group)
    for name in ("shield_end", "P1", "P2"):
        np.testing.assert_array_equal(labelled.labels[name], recipe.labels[name], err_msg=name)


def test_p1_is_the_aperture_reached_in_a_straight_line_from_the_shield_end(two_workers):
    """By hand: 100 cm of air from the shield end (z 900) to the entrance (z 1000); P1 when
    |x|, |y| <= 10 cm there (air scattering moves a few muons across the edge)."""
    rows = two_workers.at_end
    x, y, px, py, pz = two_workers.end[rows].T
    inside = (np.abs(x + px / pz * 100.0) <= APERTURE) & (np.abs(y + py / pz * 100.0) <= APERTURE)
    p1 = two_workers.label[rows] >= 1
    assert 0.1 < p1.mean() < 0.9
    assert np.mean(inside == p1) > 0.98
    assert not (two_workers.label[~rows] >= 1).any()  # nothing enters the vessel without crossing the shield end


def test_views_and_provenance(settings, two_workers, vessel_geometry):
    data, labelled = two_workers.training_data(), two_workers.labelled()
    assert len(data.label) == int(two_workers.at_end.sum()) and data.n_target == 1800
    assert data.z_plane == 900.0 and data.weight is None  # equal weights: an unweighted sample
    np.testing.assert_array_equal(data.state[:, 5], two_workers.target[two_workers.at_end, 6])
    assert labelled.labels["P2"].sum() <= labelled.labels["P1"].sum() <= labelled.labels["shield_end"].sum()
    record = json.loads(data.provenance)
    assert record == labelled.meta["provenance"]
    assert record["geometry"]["name"] == "TEST_SHORT" and record["geometry"]["file"] == "short_vessel.yaml"
    assert record["geometry"]["field"]["model"] == "constant"  # the loader default: test_short_shield.yaml names none
    assert record["truth"] == {"propagator": "fast-shield", "tables": DEFAULT_TABLES.name,
                               "tables_digest": "sha256:" + hashlib.sha256(DEFAULT_TABLES.read_bytes()).hexdigest(),
                               # fast-shield's documented default step control [cm, GeV/c]
                               "steps": {"dense_step": 20.0, "long_step": 40.0, "air_step": 40.0,
                                         "min_momentum": 0.5}}
    assert record["target_generator"]["name"] == "flow-target"
    assert record["target_generator"]["model_digest"] == "sha256:" + hashlib.sha256(FLOW_WEIGHTS.read_bytes()
                                                                                    ).hexdigest()
    assert record["sample_seeds"] == [3]


@pytest.mark.parametrize("truth", ["reference-shield", "geant4-shield"])
def test_the_other_truths_make_the_same_sample_on_any_number_of_workers(truth, vessel_geometry):
    """200 muons x 2 copies in two chunks: the sample of either worker count, and the truth's
    record (Geant4: its version and the production cut in mm, the stage's 10 cm default)."""
    settings = SampleSettings(geometry=str(vessel_geometry), truth=truth, muons=200, copies=2, seed=3, chunk=100)
    one, two = make_sample(settings, workers=1), make_sample(settings, workers=2)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)
    assert 0 < (one.label >= 1).sum() < len(one.label)
    record = one.meta["provenance"]["truth"]
    assert record["propagator"] == truth
    if truth == "geant4-shield":
        from shipfastsim.plugins.geant4_shield.runtime import geant4_version

        assert record["geant4_version"] == geant4_version() and record["production_cut_mm"] == 100.0
    else:
        assert record == {"propagator": "reference-shield"}


def test_a_truth_or_generator_the_chain_does_not_take_is_refused(vessel_geometry):
    from shipfastsim.errors import UsageError

    for change in ({"truth": "nf-after-shield"}, {"generator": "fairship-file"}):
        settings = SampleSettings(**{"geometry": str(vessel_geometry), "truth": "fast-shield"} | change)
        with pytest.raises(UsageError, match="the chain takes a truth of"):
            make_sample(settings, workers=1)


def test_a_generator_of_ones_own_makes_the_sample(vessel_geometry, tmp_path):
    """``generator_weights``: a flow-target trained here (a few steps on the holdout file)
    makes the muons, and the provenance names its weights' digest, not the bundled ones."""
    from shipfastsim.data import HOLDOUT_SAMPLE
    from shipfastsim.plugins.flow_target.model import FlowConfig
    from shipfastsim.plugins.flow_target.train import FlowTrainConfig, train_flow

    config = FlowTrainConfig(seed=5, batch_size=128, max_steps=20, eval_every=20, val_generated=1000,
                             select_on_trees=False, flow=FlowConfig(couplings=2, hidden=8, layers=1))
    weights = train_flow([HOLDOUT_SAMPLE], tmp_path, config, progress=False).weights_path
    common = dict(geometry=str(vessel_geometry), truth="fast-shield", muons=200, copies=2, seed=3, chunk=100)
    own = make_sample(SampleSettings(**common, generator_weights=str(weights)), workers=1)
    bundled = make_sample(SampleSettings(**common), workers=1)
    assert not np.array_equal(own.target, bundled.target)
    record = own.meta["provenance"]["target_generator"]
    assert record["model_digest"] == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"flow-target ({weights.name})" in own.meta["recipe"]


def test_missing_generator_weights_are_a_usage_error(vessel_geometry, tmp_path, capsys):
    from shipfastsim.cli import main
    from tests.plugins.train_chain.conftest import chain_arguments

    code = main(chain_arguments(vessel_geometry, tmp_path / "out", **{"--generator-weights": str(tmp_path / "x.st")}))
    assert code != 0
    assert "--generator-weights" in capsys.readouterr().err
