"""Provenance of trained models: the geometry digest, the bundled models' records, and
`check` refusing a model on a geometry it was not trained for unless told."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import yaml

from shipfastsim.config import ConfigError, validate_document
from shipfastsim.configs import CONFIG_DIR, GEOMETRY_DIR
from shipfastsim.provenance import (
    describe,
    geometry_digest,
    geometry_record,
    make_provenance,
    merge_samples,
    read_provenance,
    truth_record,
)

TRY_2025 = GEOMETRY_DIR / "ship_try2025.yaml"
TRY_2026 = GEOMETRY_DIR / "ship_try2026.yaml"
PLUGINS = CONFIG_DIR.parent / "plugins"


def test_geometry_digest_ignores_comments_and_layout_but_not_numbers(tmp_path):
    text = TRY_2025.read_text()
    relaid = tmp_path / "relaid.yaml"
    relaid.write_text("# another comment\n" + yaml.safe_dump(yaml.safe_load(text), sort_keys=False, indent=4))
    assert geometry_digest(relaid) == geometry_digest(TRY_2025)
    changed = tmp_path / "changed.yaml"
    changed.write_text(text.replace("B: -1.91}", "B: -1.92}", 1))
    assert geometry_digest(changed) != geometry_digest(TRY_2025)
    assert geometry_digest(TRY_2026) != geometry_digest(TRY_2025)


def test_geometry_record_names_the_field_model():
    record = geometry_record(TRY_2026)
    assert record["name"] == "TRY_2026" and record["file"] == "ship_try2026.yaml"
    assert record["field"] == {"model": "flux-conserving", "polarity": "signed-B", "map": None}


@pytest.mark.parametrize("weights, geometry, truth, target", [
    ("nf_after_shield/try2025/nf_after_shield.safetensors", "TRY_2025", "fast-shield", "flow-target"),
    ("nf_after_shield/try2025/nf_decay_vessel.safetensors", "TRY_2025", "fast-shield", "flow-target"),
    ("mlp_filter/try2025/mlp_filter.safetensors", "TRY_2025", "fast-shield", "gan-target"),
    ("flow_target/flow_target.safetensors", None, None, None),
    ("gan_target/gan_target.safetensors", None, None, None),
])
def test_bundled_models_record_what_they_learnt_from(weights, geometry, truth, target):
    record = read_provenance(PLUGINS / weights)
    assert record is not None and record["sample_size"] > 0 and record["seed"] is not None
    if geometry is None:  # the target generators learnt the shipped MSO sample
        (data,) = record["training_data"]
        assert data["file"] == "ship_gan_target_muons_50k.root"
        return
    # the geometry they learnt is today's TRY_2025 file, so the shipped try2025 configs pass `check`
    # (the TRY_2026 models' records: tests/plugins/try2026)
    assert record["geometry"]["name"] == geometry and record["geometry"]["digest"] == geometry_digest(TRY_2025)
    assert record["geometry"]["field"] == {"model": "flux-conserving", "polarity": "signed-B", "map": None}
    assert record["truth"]["propagator"] == truth and record["truth"]["tables"] == "step_tables_v4_4b4f286b6563.npz"
    assert record["target_generator"]["name"] == target and record["notes"]


def test_truth_records_take_each_propagator_with_what_identifies_it(tmp_path):
    tables = tmp_path / "tables.npz"
    tables.write_bytes(b"abc")
    fast = truth_record("fast-shield", tables)  # sha256("abc"), FIPS 180-2 example
    assert fast["tables_digest"] == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert "steps" not in fast
    steps = {"dense_step": 20, "long_step": 160, "air_step": 40, "min_momentum": 0.5}
    stepped = truth_record("fast-shield", tables, steps=steps)
    assert stepped["steps"] == steps and stepped["tables_digest"] == fast["tables_digest"]
    assert "long_step 160 cm" in describe({"truth": stepped, "sample_size": 1, "seed": 0})
    assert truth_record("geant4-shield", geant4_version="11.3.2", production_cut_mm=0.7) == {
        "propagator": "geant4-shield", "geant4_version": "11.3.2", "production_cut_mm": 0.7}
    assert truth_record("reference-shield") == {"propagator": "reference-shield"}
    with pytest.raises(ValueError, match="Geant4 version"):
        truth_record("geant4-shield")
    with pytest.raises(ValueError, match="allowed"):
        truth_record("pythia")


def test_samples_learnt_together_join_their_seeds_and_must_agree():
    a = {"geometry": {"digest": "x"}, "truth": {"propagator": "fast-shield"}, "target_generator": None,
         "sample_seeds": [12]}
    assert merge_samples([a, a | {"sample_seeds": [13]}])["sample_seeds"] == [12, 13]
    assert merge_samples([a, None]) is None
    with pytest.raises(ValueError, match="geometry"):
        merge_samples([a, a | {"geometry": {"digest": "y"}}])
    record = make_provenance(sample_size=10, seed=1, **merge_samples([a]))
    assert record["sample_seeds"] == [12] and record["sample_size"] == 10


def _dangerous_on(geometry, allow: bool | None = None) -> dict:
    """configs/try2025_dangerous_muons.yaml (mlp-filter, trained on TRY_2025) with the propagator on ``geometry``."""
    document = yaml.safe_load((CONFIG_DIR / "try2025_dangerous_muons.yaml").read_text())
    propagator = next(s for s in document["stages"] if "propagator" in s)
    propagator["params"] = (propagator.get("params") or {}) | {"geometry": str(geometry)}
    if allow is not None:
        next(s for s in document["stages"] if s.get("filter") == "mlp-filter")["allow_geometry_mismatch"] = allow
    return document


def test_check_refuses_a_model_on_another_geometry_naming_both():
    validate_document(_dangerous_on(TRY_2025), CONFIG_DIR)  # its own geometry: fine
    for document in (_dangerous_on(TRY_2026), _dangerous_on(TRY_2026, allow=False)):
        with pytest.raises(ConfigError) as error:
            validate_document(document, CONFIG_DIR)
        message = str(error.value)
        assert "mlp-filter" in message and "TRY_2025" in message and "TRY_2026" in message
        assert "fast-shield" in message and "allow_geometry_mismatch" in message


def test_check_refuses_another_field_model_of_the_same_geometry(tmp_path):
    data = yaml.safe_load(TRY_2025.read_text())
    data["shield"]["field"] = {"model": "constant", "polarity": "direction-list"}
    other = tmp_path / "try2025_constant.yaml"
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="constant/direction-list"):
        validate_document(_dangerous_on(other), CONFIG_DIR)


def test_allowed_mismatch_runs_and_the_summary_says_so(tmp_path):
    from shipfastsim.runner import run_production
    from shipfastsim.summary import format_summary

    document = copy.deepcopy(yaml.safe_load((CONFIG_DIR / "try2025_after_shield_nf.yaml").read_text()))
    document["stages"][0]["params"] = (document["stages"][0].get("params") or {}) | {"geometry": str(TRY_2026)}
    with pytest.raises(ConfigError, match="nf-after-shield"):
        validate_document(copy.deepcopy(document), CONFIG_DIR)
    document["stages"][0]["allow_geometry_mismatch"] = True
    document["run"] |= {"events": 200, "chunk_size": 100, "executor": {"type": "serial"}}
    document["run"]["output"] = document["run"]["output"] | {"path": str(tmp_path / "nf.root")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run_production(validate_document(document, CONFIG_DIR), progress=False)
    allowed = summary["geometry_mismatches_allowed"]  # its flow and the P1 flow of p1_source: nf-decay-vessel
    assert [m.split(" was ")[0] for m in allowed] == ["stages[0] nf-after-shield: nf_after_shield.safetensors",
                                                      "stages[0] nf-after-shield: nf_decay_vessel.safetensors"]
    assert all("TRY_2026" in m for m in allowed)
    assert "allow_geometry_mismatch" in format_summary(summary)
    written = json.loads((tmp_path / "nf.summary.json").read_text())
    assert written["geometry_mismatches_allowed"] == allowed


def test_a_model_the_stage_does_not_use_is_not_checked():
    """nf-after-shield reads p1_weights only with p1_source nf-decay-vessel."""
    from shipfastsim.config import make_stage
    from shipfastsim.provenance import mismatches
    from shipfastsim.registry import get_registry

    retrained_elsewhere = {"geometry": str(TRY_2025)}  # the bundled (default) models learnt TRY_2026
    inclusive = make_stage("generator", "nf-after-shield", retrained_elsewhere | {"p1_source": "inclusive"})
    composite = make_stage("generator", "nf-after-shield", retrained_elsewhere | {"p1_source": "nf-decay-vessel"})
    assert [m.split(" was ")[0] for _, m in mismatches([inclusive], get_registry())] == [
        "nf-after-shield: nf_after_shield.safetensors"]
    assert len(mismatches([composite], get_registry())) == 2


def test_target_generator_training_records_its_files():
    import hashlib

    from shipfastsim.plugins.gan_target.sample import prepare_sample, sample_provenance

    data = CONFIG_DIR.parent / "data" / "ship_gan_target_muons_50k.root"
    sample = prepare_sample([data], knots=8)
    record = sample_provenance([data], sample, seed=3)
    (entry,) = record["training_data"]
    assert entry == {"file": data.name, "digest": "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()}
    assert record["seed"] == 3 and record["geometry"] is None and record["truth"] is None
    assert record["sample_size"] == 50_000  # the file's 50,001 entries less the 1 skipped row, all splits
    assert len(sample.classes) == pytest.approx(0.8 * 50_000, rel=0.01)  # of which the training split
