"""Per-spill weights: hand-computed through a generator, an augmenter, a filter and a propagator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import uproot

from shipfastsim import hookimpl
from shipfastsim.components import ComponentSpec, FilterDecision, Parameter, SampleNormalisation
from shipfastsim.config import ConfigError, load_config
from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.normalisation import (
    SHIP_PROTONS_PER_SPILL,
    Normalisation,
    UnknownNormalisationWarning,
    resolve_normalisation,
)
from shipfastsim.registry import ComponentRegistry, get_plugin_manager
from shipfastsim.runner import run_production

MUONS_PER_POT = 2.5e-3  # a declared factor for the test, in the realistic range (1e11 / 4e13)
EVENTS, COPIES, KEEP = 600, 3, 0.4


class KeepFractionFilter:
    """Keeps each muon with probability ``keep`` and divides its weight by it (unbiased)."""

    spec = ComponentSpec("keep-fraction", "filter", "test filter", (Parameter("keep", "float", 0.5),))

    @hookimpl
    def shipfastsim_declare_components(self):
        return [self.spec]

    @hookimpl
    def shipfastsim_filter_muons(self, stage, batch, context):
        if stage.component != self.spec.name:
            return None
        keep = stage.params["keep"]
        draw = torch.rand(len(batch), generator=context.generator, dtype=torch.float64)
        return FilterDecision(keep=draw < keep, weight=batch.weight / keep)


@pytest.fixture(scope="module")
def registry():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(KeepFractionFilter(), name="keep-fraction")
    return ComponentRegistry(manager)


def chain_document(tmp_path, target_sample, generator=None):
    return {
        "version": 1,
        "run": {"events": EVENTS, "chunk_size": 200, "seed": 3, "output": {"path": str(tmp_path / "chain.root")}},
        "stages": [
            generator or {"generator": "fairship-file", "params": {
                "files": [str(target_sample)], "muons_per_pot": MUONS_PER_POT,
                "muons_per_pot_source": "test value"}},
            {"augmenter": "phi-rotation", "params": {"copies": COPIES}},
            {"filter": "keep-fraction", "params": {"keep": KEEP}},
            {"propagator": "fast-shield", "plane": "shield_end",
             "params": {"geometry": str(GEOMETRY_DIR / "test_short_shield.yaml")}},
        ],
    }


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory, target_sample, registry, write_config_module):
    tmp_path = tmp_path_factory.mktemp("normalisation")
    path = write_config_module(tmp_path, chain_document(tmp_path, target_sample))
    config = load_config(path, registry=registry)
    summary = run_production(config, progress=False, registry=registry)
    with uproot.open(summary["files"][0]["path"]) as file:
        weights = file["pythia8-Geant4"]["w"].array(library="np").astype(np.float64)
    return summary, weights


@pytest.fixture(scope="module")
def write_config_module():
    import yaml

    def write(tmp_path, document):
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    return write


def test_every_output_muon_carries_the_hand_computed_per_spill_weight(chain_run):
    summary, weights = chain_run
    # By hand: one generated muon stands for m * P / N muons per spill; 3 copies share it;
    # the filter keeps 40 % and divides by 0.4; the propagator keeps weights unchanged.
    per_generated = MUONS_PER_POT * 4e13 / EVENTS
    assert len(weights) == summary["muons_out"] > 0
    np.testing.assert_allclose(weights, per_generated / COPIES / KEEP, rtol=1e-7)  # float32 in the file
    assert summary["weight_out"] == pytest.approx(weights.sum(), rel=1e-6)


def test_weighted_totals_are_the_per_spill_expectation_after_each_stage(chain_run):
    summary, _ = chain_run
    expected = MUONS_PER_POT * 4e13  # muons per spill that the generated sample stands for (1e11)
    generator, rotation, selection, transport = summary["stages"]
    assert generator["weight_out"] == pytest.approx(expected, rel=1e-12)
    assert rotation["weight_out"] == pytest.approx(expected, rel=1e-12)  # the copies share the weight
    # The filter is unbiased: its total scatters by sqrt((1 - p) / (p n)) = 3.0 % for n = 1800.
    spread = math.sqrt((1 - KEEP) / (KEEP * EVENTS * COPIES))
    assert abs(selection["weight_out"] / expected - 1) < 4 * spread
    # The propagator drops muons, never rescales: its total is the per-spill count that arrives.
    kept_fraction = transport["muons_out"] / transport["muons_in"]
    assert transport["weight_out"] == pytest.approx(selection["weight_out"] * kept_fraction, rel=1e-9)
    normalisation = summary["normalisation"]
    assert normalisation["per_spill"] and normalisation["pot_equivalent"] == pytest.approx(EVENTS / MUONS_PER_POT)
    assert normalisation["spills_equivalent"] == pytest.approx(EVENTS / MUONS_PER_POT / 4e13)
    assert normalisation["muons_per_pot_source"] == "test value"


def test_unknown_factor_warns_and_writes_weights_per_generated_muon(tmp_path, target_sample, registry,
                                                                    write_config_module):
    document = chain_document(tmp_path, target_sample, {"generator": "gan-target"})
    document["stages"][2]["params"]["keep"] = 1.0
    config = load_config(write_config_module(tmp_path, document), registry=registry)
    with pytest.warns(UnknownNormalisationWarning, match="PER GENERATED MUON"):
        summary = run_production(config, progress=False, registry=registry)
    assert summary["stages"][0]["weight_out"] == pytest.approx(EVENTS, rel=1e-12)
    assert summary["normalisation"]["per_spill"] is False
    assert summary["normalisation"]["pot_equivalent"] is None
    assert "muGAN" in summary["normalisation"]["muons_per_pot_source"]


def test_normalisation_arithmetic_by_hand():
    result = Normalisation("gun", SampleNormalisation(1e-3, "note"), events=2_000_000, protons_per_spill=5e13)
    assert result.weight_factor == pytest.approx(1e-3 * 5e13 / 2e6)  # 25,000 muons per spill each
    assert result.pot_equivalent == pytest.approx(2e9)
    assert result.spills_equivalent == pytest.approx(4e-5)
    assert "5e+13 protons on target" in result.weight_unit
    unknown = Normalisation("gun", SampleNormalisation(None, "why"), events=10)
    assert unknown.weight_factor == 1.0 and unknown.pot_equivalent is None and "why" in unknown.warning


def test_protons_per_spill_default_and_override(write_config):
    assert SHIP_PROTONS_PER_SPILL == 4e13
    config = load_config(write_config())
    assert config.protons_per_spill == 4e13
    override = load_config(write_config(), {"run.normalisation": {"protons_per_spill": 5e13}})
    assert override.protons_per_spill == 5e13 and override.fingerprint() != config.fingerprint()
    with pytest.warns(UnknownNormalisationWarning):
        assert resolve_normalisation(override).protons_per_spill == 5e13
    with pytest.raises(ConfigError, match=r"run\.normalisation\.protons_per_spill: 0 must be above 0"):
        load_config(write_config(), {"run.normalisation": {"protons_per_spill": 0}})
