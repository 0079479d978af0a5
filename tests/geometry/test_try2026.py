"""configs/geometry/ship_try2026.yaml against numbers read from FairShip's TRY_2026 by hand,
and every shipped config run with its geometry switched to TRY_2026.

The literals below were read from shield_db["TRY_2026"] as ported in
constanzaelizabeth/Muon-Propagation-in-Rare-Decay @ 02c462cbfc6bd01532ed3a2e73060f402d7c384c,
include/MuonShieldData.hh (FairShip's own file was not reachable; see the YAML header), and
the z positions summed by hand from them: magnet i starts at 204 cm + sum_{j<=i} Zgap_j +
sum_{j<i} 2 dZ_j (geometry_config.py create_config: target 158.64 cm + 45.36 cm).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import yaml

from shipfastsim.configs import CONFIG_DIR, GEOMETRY_DIR
from shipfastsim.geometry import load_geometry
from shipfastsim.geometry.probe import probe_points

TRY_2026 = GEOMETRY_DIR / "ship_try2026.yaml"

# name, Zgap, dZ, dXIn, dXOut, B [T], field direction (MuonShieldData.hh rows)
ROWS = [("MagnAbsorb", 0, 115, 40, 40, 2.05, "up"), ("Magn1", 15, 150, 62, 62, 1.87, "up"),
        ("Magn2", 15, 225, 70, 70, 1.865, "up"), ("Magn3", 16, 225, 64, 64, 1.92, "up"),
        ("Magn4", 15, 225, 42, 42, 1.89, "up"), ("Magn5", 16, 131, 40, 40, 0.0, "down"),
        ("Magn6", 15, 168, 20, 30, -1.42, "down"), ("Magn7", 19, 200, 38, 69, -2.035, "down")]
# (start, end) [cm], summed by hand from the Zgap and dZ above
Z_RANGES = [(204, 434), (449, 749), (764, 1214), (1230, 1680), (1695, 2145), (2161, 2423), (2438, 2774),
            (2793, 3193)]


@pytest.fixture(scope="module")
def geometry():
    return load_geometry(TRY_2026)


def test_try2026_has_fairships_eight_rows_and_direction_list(geometry):
    assert geometry.name == "TRY_2026"
    got = [(m.name, m.Zgap, m.dZ, m.dXIn, m.dXOut, m.B, m.field_direction) for m in geometry.magnets]
    assert got == ROWS
    last = geometry.magnets[-1]  # the unrounded ratios of the last row: 125/38 and 94/69
    assert last.ratio_yokesIn == pytest.approx(125 / 38, rel=1e-12)
    assert last.ratio_yokesOut == pytest.approx(94 / 69, rel=1e-12)


def test_try2026_magnet_positions_and_planes(geometry):
    edges = [z for m in geometry.magnets for z in (m.z_start, m.z_end)]
    assert edges == pytest.approx([z for pair in Z_RANGES for z in pair], abs=1e-9)
    assert geometry.plane("shield_end").z == pytest.approx(3193.0, abs=1e-9)
    assert geometry.plane("decay_vessel").z == pytest.approx(3312.0, abs=1e-9)


@pytest.mark.parametrize("point, material, region, by", [
    ((0.0, 0.0, 100.0), "tungsten", "target", 0.0),
    ((0.0, 0.0, 180.0), "copper", "proximity_shielding", 0.0),
    ((20.0, 0.0, 600.0), "iron", "Magn1/core", 1.87),
    ((100.0, 0.0, 600.0), "iron", "Magn1/return", -1.87),              # ratio 1: flux-conserving = -B
    ((100.0, 0.0, 1400.0), "iron", "Magn3/return", -1.92 / 1.3),       # x in [64 + 8, 72 + 1.3 x 64]
    ((20.0, 0.0, 2300.0), "iron", "Magn5/core", 0.0),                  # the magnet without field
    ((20.0, 0.0, 3000.0), "iron", "Magn7/core", -2.035),
    ((0.0, 0.0, 3250.0), "air", "ECN3", 0.0),
])
def test_try2026_probe_points(geometry, point, material, region, by):
    (row,) = probe_points(geometry, [point])
    assert (row["material"], row["region"]) == (material, region)
    assert row["field_T"][1] == pytest.approx(by, rel=1e-6, abs=1e-12)


def _with_try2026(document: dict) -> dict:
    """The config with every stage's geometry switched to TRY_2026 and the bundled models
    (trained on TRY_2025) explicitly allowed to run on it."""
    from shipfastsim.registry import get_registry

    document = copy.deepcopy(document)
    registry = get_registry()
    for entry in document["stages"]:
        kind = next(k for k in ("generator", "augmenter", "filter", "propagator") if k in entry)
        spec = registry.get(kind, entry[kind]).spec
        if any(p.name == "geometry" for p in spec.parameters):
            entry["params"] = (entry.get("params") or {}) | {"geometry": str(TRY_2026)}
            entry["allow_geometry_mismatch"] = True
        if any(str(p.default).endswith(".safetensors") for p in spec.parameters):
            entry["allow_geometry_mismatch"] = True
    return document


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
def test_every_config_checks_and_runs_on_try2026(name, tmp_path):
    from shipfastsim.config import validate_document
    from shipfastsim.runner import run_production

    document = _with_try2026(yaml.safe_load((CONFIG_DIR / name).read_text()))
    document["run"] |= {"events": 50, "chunk_size": 50, "executor": {"type": "serial"}}  # small: a run goes through
    document["run"]["output"] = document["run"]["output"] | {"path": str(tmp_path / "out.root")}
    config = validate_document(document, CONFIG_DIR)  # what `shipfastsim check` does
    geometries = {s.params["geometry"] for s in config.stages if "geometry" in s.params}
    assert geometries <= {str(TRY_2026)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run_production(config, progress=False)
    assert summary["muons_generated"] > 0
    planes = {s.params.get("plane") for s in config.stages if s.kind == "propagator"}
    if "shield_end" in planes:  # the muons are written on TRY_2026's shield end
        from shipfastsim.adapters.fairship import read_ntuple

        muons, _ = read_ntuple(tmp_path / "out.root")
        assert len(muons) > 0 and float((muons.z - 3193.0).abs().max()) < 1e-3
