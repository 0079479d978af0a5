"""fairship-file replaying a weighted FairShip production: its normalisation from sum(w) / POT and
each muon's per-spill weight, by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import uproot
import yaml

from shipfastsim.batch import MuonBatch
from shipfastsim.config import ConfigError, load_config
from shipfastsim.runner import run_production

SPILL_POT = 5.0e13  # the production's convention (FairShip 2018)
N = 400


def weighted_file(path, weights):
    from shipfastsim.adapters.fairship import write_ntuple

    rng = np.random.default_rng(1)
    n = len(weights)
    columns = {"x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n), "z": rng.uniform(1, 50, n),
               "px": rng.normal(0, 1, n), "py": rng.normal(0, 1, n), "pz": rng.uniform(10, 100, n),
               "pdg_id": np.where(rng.random(n) < 0.5, 13, -13), "weight": weights, "event_id": np.arange(n)}
    write_ntuple(path, MuonBatch.from_columns(columns))
    return path


def config(tmp_path, path, **params):
    document = {"version": 1,
                "run": {"events": N, "chunk_size": 150, "seed": 2, "output": {"path": str(tmp_path / "out.root")}},
                "stages": [{"generator": "fairship-file", "params": {"files": [str(path)]} | params}]}
    target = tmp_path / "run.yaml"
    target.write_text(yaml.safe_dump(document))
    return target


def test_replay_of_a_weighted_production_writes_its_per_spill_weights(tmp_path):
    """Replaying every muon once: muon i's weight is w_i x 4e13 / 5e13 per spill of 4e13 POT
    (its own w rescaled to the run's spill), and muons_per_pot = sum(w) / 5e13."""
    weights = np.where(np.arange(N) % 4 == 0, 768.75, 9.37)  # minimum-bias and beauty-like weights
    path = weighted_file(tmp_path / "production.root", weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = run_production(load_config(config(tmp_path, path, weights_spill_pot=SPILL_POT)), progress=False)
    assert summary["normalisation"]["muons_per_pot"] == pytest.approx(weights.sum() / SPILL_POT, rel=1e-6)
    assert "production.root" in summary["normalisation"]["muons_per_pot_source"]
    with uproot.open(summary["files"][0]["path"]) as file:
        written = file["pythia8-Geant4"]["w"].array(library="np").astype(np.float64)
    # The output interleaves the chunks: compare as multisets (float32 in the file).
    np.testing.assert_allclose(np.sort(written), np.sort(weights * 4e13 / SPILL_POT), rtol=1e-6)


def test_muons_per_pot_and_weights_spill_pot_exclude_each_other(tmp_path):
    path = weighted_file(tmp_path / "p.root", np.ones(N))
    with pytest.raises(ConfigError, match="weights_spill_pot"):
        load_config(config(tmp_path, path, weights_spill_pot=SPILL_POT, muons_per_pot=1e-3))


def test_a_file_with_negative_weights_is_refused_naming_it(tmp_path):
    weights = np.ones(N)
    weights[7] = -1.0
    path = weighted_file(tmp_path / "negative_w.root", weights)
    with pytest.raises(ConfigError, match="negative_w.root.*negative"):
        load_config(config(tmp_path, path, weights_spill_pot=SPILL_POT))
