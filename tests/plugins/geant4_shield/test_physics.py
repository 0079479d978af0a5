"""Geant4's muon physics in geant4-shield against hand values: mean energy loss in iron and bending."""

from __future__ import annotations

import math

import pytest
import torch

from shipfastsim.plugins.geant4_shield.transport import Geant4Transport

from .conftest import CORE_B, MAGNET_Z, SLAB_CM

MUON_MASS = 0.1056583755  # GeV, PDG
IRON_DENSITY = 7.874  # g/cm3
C_LIGHT = 0.299792458  # GeV/c per (T m)
# Muon energy loss in iron, PDG muE format (total, all processes) [MeV cm2/g] at kinetic
# energy T [GeV]: PUMAS v1.1 dedx/muon/iron.txt of niess/pumas-materials (<Z/A> = 0.46557,
# I = 286 eV, as the PDG's muE_iron_Fe.txt); the same rows as tests/plugins/reference.
IRON_TOTAL_DEDX = {10.0: 1.974, 100.0: 2.778}


def _beam(n: int, kinetic: float, x: float = 0.0, charge: float = 1.0):
    p = math.sqrt(kinetic * kinetic + 2.0 * kinetic * MUON_MASS)
    pos = torch.zeros(n, 3, dtype=torch.float64)
    pos[:, 0], pos[:, 2] = x, -50.0
    mom = torch.zeros(n, 3, dtype=torch.float64)
    mom[:, 2] = p
    return pos, mom, torch.full((n,), charge, dtype=torch.float64), p


@pytest.mark.parametrize(("kinetic", "n"), [(10.0, 40000), (100.0, 6000)])
def test_mean_energy_loss_in_iron_matches_the_table(slab_geometry, kinetic, n):
    transport = Geant4Transport(slab_geometry)
    pos, mom, charge, p0 = _beam(n, kinetic)
    result = transport.propagate(pos, mom, charge, "after_slab", seed=11)
    state = result.state["after_slab"]
    assert bool(result.reached["after_slab"].all())
    energy = torch.sqrt((state[:, 3:] ** 2).sum(1) + MUON_MASS**2)
    loss = (math.sqrt(p0 * p0 + MUON_MASS**2) - energy) * 1e3  # MeV
    expected = IRON_TOTAL_DEDX[kinetic] * IRON_DENSITY * SLAB_CM
    mean, error = float(loss.mean()), float(loss.std() / math.sqrt(n))
    print(f"T = {kinetic:g} GeV through {SLAB_CM:g} cm of iron: mean loss {mean:.1f} +- {error:.1f} MeV, "
          f"table {expected:.1f} MeV ({mean / expected - 1:+.2%})")
    # Tolerance: the statistical error (4 SE) and 1 % for the differences of the table and the physics models.
    assert abs(mean - expected) < 4.0 * error + 0.01 * expected


@pytest.mark.parametrize("charge", [1.0, -1.0])
def test_bending_in_the_core_field(slab_geometry, charge):
    """px gained in the core: C B L (1 - eps L / (2 p)), eps the mean loss per cm (the loss
    along the bent direction takes back part of px); mu+ in By > 0 goes to -x."""
    transport = Geant4Transport(slab_geometry)
    n, kinetic = 8000, 100.0
    pos, mom, q, _ = _beam(n, kinetic, x=25.0, charge=charge)
    result = transport.propagate(pos, mom, q, ["after_slab", "after_magnet"], seed=12)
    before, after = result.state["after_slab"], result.state["after_magnet"]
    assert bool(result.reached["after_magnet"].all())
    kick = after[:, 3] - before[:, 3]
    length = MAGNET_Z[1] - MAGNET_Z[0]
    p_in = float(torch.linalg.norm(before[:, 3:], dim=1).mean())
    eps = IRON_TOTAL_DEDX[kinetic] * 1e-3 * IRON_DENSITY  # GeV/cm
    expected = -charge * C_LIGHT * CORE_B * length * 1e-2 * (1.0 - eps * length / (2.0 * p_in))
    mean, error = float(kick.mean()), float(kick.std() / math.sqrt(n))
    print(f"charge {charge:+g}: px kick {mean:.5f} +- {error:.5f} GeV/c, hand {expected:.5f}")
    assert abs(mean - expected) < 4.0 * error + 0.002 * abs(expected)
