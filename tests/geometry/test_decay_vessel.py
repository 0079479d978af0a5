"""Decay-vessel subset labels P0/P1/P2 against hand-computed tracks and a brute-force scan."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from shipfastsim.batch import MuonBatch
from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import GeometryError, geometry_from_dict, load_geometry
from shipfastsim.geometry.decay_vessel import DecayVessel, subset_labels

TRY2025 = GEOMETRY_DIR / "ship_try2025.yaml"


@pytest.fixture(scope="module")
def vessel() -> DecayVessel:
    return DecayVessel.from_geometry(load_geometry(TRY2025))


def test_vessel_is_fairships_helium_vessel(vessel):
    # veto_config_helium.yaml: full inner widths 100 x 270 cm at the start, 400 x 600 cm at the end;
    # veto.cxx: 50 m long from decayVolume.z0 = 89.57 m - 31.45 m - 25 m = 33.12 m.
    assert (vessel.z_entrance, vessel.entrance_half_x, vessel.entrance_half_y) == (3312.0, 50.0, 135.0)
    assert (vessel.z_exit, vessel.exit_half_x, vessel.exit_half_y) == (8312.0, 200.0, 300.0)
    hx, hy = vessel.half_widths(5812.0)  # halfway: (50 + 200) / 2, (135 + 300) / 2
    assert (float(hx), float(hy)) == (125.0, 217.5)


# (x, y, z, px, py, pz) -> label, each computed by hand with entrance z 3312, exit z 8312 (5000 cm on).
HAND_CASES = [
    ((0.0, 0.0, 3312.0, 0.0, 0.0, 100.0), 2),        # on axis
    ((49.0, 0.0, 3312.0, 0.0, 0.0, 100.0), 2),       # inside, parallel: 49 < 50 and 49 < 200
    ((50.0, -135.0, 3312.0, 0.0, 0.0, 50.0), 2),     # on the entrance corner (edges belong inside)
    ((51.0, 0.0, 3312.0, 0.0, 0.0, 100.0), 0),       # outside the entrance in x
    ((0.0, 136.0, 3312.0, 0.0, 0.0, 100.0), 0),      # outside the entrance in y
    ((0.0, 0.0, 3312.0, 4.1, 0.0, 100.0), 1),        # exit x = 0.041 * 5000 = 205 > 200
    ((0.0, 0.0, 3312.0, -3.9, 0.0, 100.0), 2),       # exit x = -195
    ((0.0, 0.0, 3312.0, 0.0, 6.1, 100.0), 1),        # exit y = 305 > 300
    ((0.0, 100.0, 3312.0, 0.0, 4.0, 100.0), 2),      # exit y = 100 + 200 = 300: on the edge
    ((0.0, 0.0, 3312.0, 1.0, 0.0, -100.0), 0),       # going backwards
    # from the shield end, 163.34 cm upstream: x0 = 60 - 1.6334 = 58.37 (out); 51 - 1.63 = 49.37 (in),
    # then x1 = 49.37 - 50 = -0.63 (in).
    ((60.0, 0.0, 3148.66, -1.0, 0.0, 100.0), 0),
    ((51.0, 0.0, 3148.66, -1.0, 0.0, 100.0), 2),
    # y0 = -140 + 0.02 * 163.34 = -136.73 (out)
    ((0.0, -140.0, 3148.66, 0.0, 2.0, 100.0), 0),
]


def test_hand_computed_labels(vessel):
    states = torch.tensor([s for s, _ in HAND_CASES], dtype=torch.float64)
    labels = vessel.labels(*states.T)
    assert labels.dtype == torch.int64
    assert labels.tolist() == [label for _, label in HAND_CASES]


def test_batch_labels_match_columns(vessel):
    states = torch.tensor([s for s, _ in HAND_CASES], dtype=torch.float64)
    n = len(HAND_CASES)
    batch = MuonBatch.from_columns({
        "x": states[:, 0], "y": states[:, 1], "z": states[:, 2], "px": states[:, 3], "py": states[:, 4],
        "pz": states[:, 5], "pdg_id": torch.full((n,), 13), "weight": torch.ones(n, dtype=torch.float64)})
    assert subset_labels(batch, vessel).tolist() == [label for _, label in HAND_CASES]


def test_endpoints_decide_like_a_dense_scan(vessel):
    # Brute force: a track is in P2 if it is inside the frustum at 501 z values along the vessel.
    g = torch.Generator().manual_seed(3)
    n = 4000
    x0 = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 120
    y0 = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 300
    tx = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.12
    ty = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.16
    pz = torch.full((n,), 80.0, dtype=torch.float64)
    z = torch.full((n,), vessel.z_entrance, dtype=torch.float64)
    labels = vessel.labels(x0, y0, z, tx * pz, ty * pz, pz)
    zs = torch.linspace(vessel.z_entrance, vessel.z_exit, 501, dtype=torch.float64)
    hx, hy = vessel.half_widths(zs)
    dz = zs - vessel.z_entrance
    inside = ((x0[:, None] + tx[:, None] * dz).abs() <= hx) & ((y0[:, None] + ty[:, None] * dz).abs() <= hy)
    brute = inside[:, 0].long() + inside.all(1).long()
    assert torch.equal(labels, brute)
    assert (labels == 1).sum() > 100 and (labels == 2).sum() > 100 and (labels == 0).sum() > 100


def test_states_past_the_entrance_are_refused(vessel):
    one = torch.ones(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="entrance"):
        vessel.labels(0 * one, 0 * one, 3400 * one, 0 * one, 0 * one, 10 * one)


@pytest.fixture()
def try2025_dict() -> dict:
    return yaml.safe_load(TRY2025.read_text())


def test_missing_or_bad_section(try2025_dict):
    data = copy.deepcopy(try2025_dict)
    data.pop("decay_vessel")
    with pytest.raises(GeometryError, match="no decay_vessel section"):
        DecayVessel.from_geometry(geometry_from_dict(data))
    data = copy.deepcopy(try2025_dict)
    data["decay_vessel"]["plane"] = "shield_end"  # a plane without an aperture
    with pytest.raises(GeometryError, match="decay_vessel.plane"):
        geometry_from_dict(data)
    data = copy.deepcopy(try2025_dict)
    data["decay_vessel"]["length"] = -1.0
    with pytest.raises(GeometryError, match="decay_vessel"):
        geometry_from_dict(data)
