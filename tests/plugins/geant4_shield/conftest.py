"""A small test geometry for geant4-shield: an iron slab, then one magnet with a constant field."""

from __future__ import annotations

import pytest

from shipfastsim.geometry import geometry_from_dict

#: The slab: 20 cm of iron from z = 0; the magnet: 50 cm long from z = 600 cm, core
#: By = 1.5 T over 0 < x < 50 cm, |y| < 50 cm (mid-gap 0, flat yoke edges at y = 50).
SLAB_CM = 20.0
MAGNET_Z = (600.0, 650.0)
CORE_B = 1.5


def slab_and_magnet() -> dict:
    magnet = {"name": "Mag", "field_direction": "up", "Zgap": 0.0, "dZ": 0.5 * (MAGNET_Z[1] - MAGNET_Z[0]),
              "dXIn": 50.0, "dXOut": 50.0, "dYIn": 50.0, "dYOut": 50.0, "gapIn": 5.0, "gapOut": 5.0,
              "ratio_yokesIn": 1.0, "ratio_yokesOut": 1.0, "dY_yokeIn": 30.0, "dY_yokeOut": 30.0,
              "midGapIn": 0.0, "midGapOut": 0.0, "B": CORE_B}
    return {
        "version": 1, "name": "slab-and-magnet",
        "world": {"half_x": 500.0, "half_y": 500.0, "z_min": -100.0, "z_max": 1000.0, "default_material": "air"},
        "target": {"z0": -95.0, "length": 1.0, "half_x": 1.0, "half_y": 1.0, "material": "tungsten"},
        "blocks": [{"name": "slab", "z_start": 0.0, "z_end": SLAB_CM, "x_min": -200.0, "x_max": 200.0,
                    "y_min": -200.0, "y_max": 200.0, "material": "iron"}],
        "shield": {"z_start": MAGNET_Z[0], "material": "iron", "field": {"model": "constant", "polarity": "signed-B"},
                   "magnets": [magnet]},
        "planes": [{"name": "after_slab", "z": 300.0}, {"name": "after_magnet", "z": 900.0}],
    }


@pytest.fixture(scope="session")
def slab_geometry():
    return geometry_from_dict(slab_and_magnet(), source="slab-and-magnet")
