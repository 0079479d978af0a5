"""Shared fixtures: a uniform-field test geometry, cross-section integrals above a cut."""

import math

import numpy as np
import pytest
from scipy.integrate import simpson

from shipfastsim.geometry import geometry_from_dict, get_material
from shipfastsim.plugins.reference.physics import RADIATIVE_PROCESSES
from shipfastsim.plugins.reference.tables import build_process_table


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


def _above_cut(energy: float, material=None, v_cat: float = 0.05) -> tuple[float, float]:
    """(interactions per g/cm2, mean fractional loss per g/cm2) above v_cat at E [GeV] (iron by default):
    the radiative integrals interpolated linearly in ln E, plus the knock-on electrons
    above v_cat E, whose spectrum (spin 1/2, PDG eq. 34.5) is integrated here by Simpson."""
    material = material or get_material("iron")
    rate = fraction = 0.0
    for name in RADIATIVE_PROCESSES:
        table = build_process_table(name, material, v_cat)
        log_e = math.log(energy)
        i = int((log_e - float(table.log_e[0])) / float(table.log_e[1] - table.log_e[0]))
        w = (log_e - float(table.log_e[i])) / float(table.log_e[i + 1] - table.log_e[i])
        above = table.b_total - table.b_cont
        rate += float(table.rate[i] * (1 - w) + table.rate[i + 1] * w)
        fraction += float(above[i] * (1 - w) + above[i + 1] * w)
    mass = 0.1056583755
    gamma = energy / mass
    beta2 = 1.0 - 1.0 / gamma**2
    w_max = 2 * 0.51099895e-3 * (gamma**2 - 1) / (1 + 2 * gamma * 0.51099895e-3 / mass + (0.51099895e-3 / mass) ** 2)
    t = np.geomspace(v_cat * energy, w_max, 20001)
    spectrum = 0.5 * 0.307075e-3 * material.z_over_a / beta2 / t**2 * (1 - beta2 * t / w_max + t**2 / (2 * energy**2))
    rate += float(simpson(spectrum, x=t))
    fraction += float(simpson(spectrum * t, x=t)) / energy
    return rate, fraction


@pytest.fixture
def above_cut():
    return _above_cut
