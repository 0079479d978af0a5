"""fast-shield step tables from Geant4 steps (`shipfastsim tables build --physics geant4`), tiny."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from shipfastsim.plugins.fast_shield.tables import (
    TableSettings,
    load_tables,
    loss_table_mean,
    save_tables,
    tables_filename,
)
from shipfastsim.plugins.geant4_shield.step_tables import build_geant4_tables

# Published iron table (PDG muE format, PUMAS; as tests/plugins/reference): T [GeV] ->
# total dE/dx [MeV cm2/g].
IRON_TOTAL = {10.0: 1.974, 100.0: 2.778}
TINY = TableSettings(materials=(("iron", 1.0),), p_min=10.0, p_max=100.0, p_per_decade=1, l_min=4.0, l_max=16.0,
                     samples=2000, physics="geant4", geant4_cut=1.0, v_catastrophic=None)


def test_geant4_tables_build_save_load_and_match_the_published_loss(tmp_path):
    """Every loss in the tables (no catastrophic split): the tabulated mean over 16 cm of
    iron is Geant4's mean loss, within 3 % of the published table at 10 and 100 GeV/c
    (2,000 muons; at 100 GeV/c a fifth of the mean is radiative)."""
    tables = build_geant4_tables(TINY, workers=1)
    path = save_tables(tables, tmp_path)
    assert path.name == tables_filename(TINY) and path.name != tables_filename(replace(TINY, geant4_cut=10.0))
    again = load_tables(path, expected=TINY)
    for array in (again.loss, again.angle, again.disp):
        assert np.isfinite(array).all() and (array >= 0).all()
    for i, p in enumerate(TINY.p_nodes):
        kinetic = math.hypot(p, 0.1056583755) - 0.1056583755
        published = IRON_TOTAL[10.0 if p < 50 else 100.0] * 1e-3
        mean = loss_table_mean(again.loss[0, i, -1])
        print(f"p = {p:g} GeV/c (T = {kinetic:.2f} GeV): tabulated mean {mean * 1e3:.4f} MeV cm2/g, "
              f"published {published * 1e3:.3f}")
        assert mean == pytest.approx(published, rel=0.03 if p < 50 else 0.08)
    # Angles are in units of the step's core width: the space angle's 40 % quantile (node 12) is
    # sqrt(-2 ln 0.6) = 1.01 for a Gaussian core of that width.
    assert 0.9 < again.angle[0, 0, -1, 0, 12] < 1.15
