"""Shared fixtures: a uniform-field test geometry."""

import pytest

from shipfastsim.geometry import geometry_from_dict


def uniform_field_geometry(shield_material: str, field: float = 1.5) -> dict:
    """One 10 m long magnet whose core (|x|, |y| up to 10 m) holds a uniform By [T]."""
    return {
        "version": 1, "name": f"UNIFORM_{shield_material}",
        "frame": {"target_z0": 0.0, "ntuple_z_shift": 5000.0},
        "world": {"half_x": 3000.0, "half_y": 3000.0, "z_min": -50.0, "z_max": 1300.0, "default_material": "air"},
        "target": {"z0": 0.0, "length": 1.0, "half_x": 1.0, "half_y": 1.0, "material": "air", "fill_fraction": 1.0},
        "blocks": [],
        "shield": {"z_start": 100.0, "material": shield_material, "coil_gap_rule": "none", "magnets": [
            {"name": "M", "field_direction": "up", "Zgap": 0, "dZ": 500.0, "dXIn": 1000.0, "dXOut": 1000.0,
             "dYIn": 1000.0, "dYOut": 1000.0, "gapIn": 10.0, "gapOut": 10.0, "ratio_yokesIn": 1.0,
             "ratio_yokesOut": 1.0, "dY_yokeIn": 10.0, "dY_yokeOut": 10.0, "midGapIn": 0.0, "midGapOut": 0.0,
             "B": field}]},
        "planes": [{"name": "end", "z": 1100.0}],
    }


@pytest.fixture
def uniform_geometry():
    return lambda material, field=1.5: geometry_from_dict(uniform_field_geometry(material, field))
