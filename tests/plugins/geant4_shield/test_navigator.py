"""The Geant4 geometry against the project's lookup: no overlaps, same material and part per point."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import load_geometry
from shipfastsim.plugins.geant4_shield.detector import magnet_parts
from shipfastsim.plugins.geant4_shield.navigator import check_geometry


@pytest.mark.parametrize("name", ["ship_try2025.yaml", "test_short_shield.yaml"])
def test_geant4_geometry_equals_the_lookup(name):
    report = check_geometry(load_geometry(GEOMETRY_DIR / name), n_points=20000, seed=3)
    print(report.summary())
    assert report.ok


def test_navigator_point_counts_by_volume(slab_geometry):
    # The slab geometry too (no cavern: the world is air), including the magnet's parts.
    report = check_geometry(slab_geometry, n_points=6000, seed=4)
    assert report.ok, report.summary()


def _moved_corner(shift_cm: float):
    """Magn2's +x core with its outer upper corner moved by ``shift_cm`` in x at both faces."""
    def parts_of(magnet, field_model):
        parts = magnet_parts(magnet, field_model)
        if magnet.name != "Magn2":
            return parts
        core = parts[0]
        assert core.name == "Magn2/core/+x"
        faces = []
        for corners in (core.corners_in, core.corners_out):
            moved = list(corners)
            moved[2] = (moved[2][0] + shift_cm, moved[2][1])  # (mid + dX, dY)
            faces.append(tuple(moved))
        return [replace(core, corners_in=faces[0], corners_out=faces[1]), *parts[1:]]
    return parts_of


def test_a_corner_moved_inwards_is_found_by_the_navigator():
    report = check_geometry(load_geometry(GEOMETRY_DIR / "ship_try2025.yaml"), n_points=20000, seed=3,
                            parts_of=_moved_corner(-5.0))
    print(report.summary())
    assert not report.overlaps and len(report.mismatches) >= 2
    assert all("Magn2/core" in ours for _, _, ours in report.mismatches)


def test_a_corner_moved_outwards_is_an_overlap():
    report = check_geometry(load_geometry(GEOMETRY_DIR / "ship_try2025.yaml"), n_points=2000, seed=3,
                            parts_of=_moved_corner(3.0))
    assert report.overlaps == ["Magn2/yoke/+x+y"]
