"""Step tables: build, versioned save/load, size and content of the shipped file."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from shipfastsim.geometry import get_material
from shipfastsim.plugins.fast_shield import DEFAULT_TABLES
from shipfastsim.plugins.fast_shield import tables as tables_module
from shipfastsim.plugins.fast_shield.tables import (
    FORMAT_VERSION,
    SHIPPED_SETTINGS,
    U_LOSS,
    TableSettings,
    build_tables,
    load_tables,
    loss_table_mean,
    save_tables,
    tables_filename,
    u_grid,
)

TINY = TableSettings(materials=(("iron", 1.0),), p_min=5.0, p_max=50.0, p_per_decade=2, l_min=2.0, l_max=8.0,
                     samples=300)


def _mean(quantiles: np.ndarray, u: np.ndarray) -> float:
    """Mean of the sampled distribution from its inverse-CDF nodes."""
    return loss_table_mean(quantiles)


def test_u_grid_is_increasing_from_0_to_1():
    u = u_grid(40, 0.8, 23, 1e-4)
    assert u[0] == 0.0 and u[-1] == 1.0 and np.all(np.diff(u) > 0)
    assert 1.0 - u[-2] == pytest.approx(1e-4)


def test_digest_does_not_depend_on_the_last_bit_of_computed_floats(monkeypatch):
    """The shipped tables' name is their settings' hash and must come out the same on
    every CPU, while numpy's geomspace, from which the probability grids are computed,
    can differ in the last bit between machines.  A grid one ulp off leaves the hash
    alone; a different grid parameter changes it."""
    digest = TableSettings().digest()
    monkeypatch.setattr(tables_module, "U_LOSS", np.nextafter(U_LOSS, 2.0))
    assert TableSettings().digest() == digest
    monkeypatch.setattr(tables_module, "GRID_LOSS", (40, 0.8, 23, 2e-4))
    assert TableSettings().digest() != digest


def test_round_trip_and_version_checks(tmp_path):
    tables = build_tables(TINY)
    assert tables.loss.shape == (1, 3, 3, len(U_LOSS))
    assert np.all(np.diff(tables.loss, axis=-1) >= 0), "quantiles increase"
    path = save_tables(tables, tmp_path)
    assert path.name == tables_filename(TINY) and TINY.digest() in path.name and f"v{FORMAT_VERSION}" in path.name
    again = load_tables(path, expected=TINY)
    np.testing.assert_allclose(again.loss, tables.loss, rtol=2e-3)
    with pytest.raises(ValueError, match="built for settings"):
        load_tables(path, expected=replace(TINY, v_cut=0.02))
    # A file of another format version, or whose hash does not match its settings, is refused.
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["meta"]))
    for change, message in (({"format": FORMAT_VERSION + 1}, "format"), ({"digest": "0" * 12}, "hash")):
        bad = tmp_path / f"bad_{message}.npz"
        np.savez(bad, **(arrays | {"meta": np.array(json.dumps(meta | change))}))
        with pytest.raises(ValueError, match=message):
            load_tables(bad)


def test_shipped_tables_are_small_and_match_the_default_settings():
    assert DEFAULT_TABLES.is_file(), "run `shipfastsim tables build` to make the shipped tables"
    assert DEFAULT_TABLES.stat().st_size < 2 * 1024**2
    tables = load_tables(DEFAULT_TABLES, expected=SHIPPED_SETTINGS)
    assert tables.settings.physics == "geant4" and tables.settings.geant4_cut == SHIPPED_SETTINGS.geant4_cut
    for array in (tables.loss, tables.angle, tables.disp):
        assert np.isfinite(array).all() and (array >= 0).all()


# Muon energy loss in iron, PDG muE format, total of all processes [MeV cm2/g], split into
# ionisation and radiative, at kinetic energy T [GeV]: PUMAS v1.1 dedx/muon/iron.txt of
# niess/pumas-materials (<Z/A> = 0.46557, I = 286 eV, as the PDG's muE_iron_Fe.txt); the rows of
# tests/plugins/reference/test_energy_loss.py.
IRON_TABLE = {10.0: (1.942, 3.202e-2), 100.0: (2.207, 5.714e-1), 1000.0: (2.428, 7.386)}


def _published_total(kinetic: float) -> float:
    """Total dE/dx [GeV cm2/g] at T between the table's rows: ionisation linear in log T,
    the radiative part proportional to T (its b(E) is nearly constant), from the row below."""
    low = max(t for t in IRON_TABLE if t <= kinetic)
    high = min(t for t in IRON_TABLE if t > kinetic)
    ion = IRON_TABLE[low][0] + (IRON_TABLE[high][0] - IRON_TABLE[low][0]) * math.log(kinetic / low) / math.log(
        high / low)
    return (ion + IRON_TABLE[low][1] * kinetic / low) * 1e-3


@pytest.mark.parametrize(("p", "rel"), [(10.8, 0.02), (108.0, 0.04)])
def test_shipped_tables_reproduce_the_published_mean_loss(p, rel, above_cut):
    """Mean tabulated loss over 16 cm of iron plus the mean of the catastrophic losses
    the tables leave to the sampler (their cross-section integral above v_catastrophic)
    against the published iron table (independent of Geant4 and of the reference).  At
    100 GeV/c a fifth of the mean is radiative and rests on rare losses."""
    tables = load_tables(DEFAULT_TABLES)
    s = tables.settings
    m = tables.material_index("iron", 1.0)
    i = int(np.argmin(np.abs(np.log(s.p_nodes / p))))
    j = int(np.argmin(np.abs(s.l_nodes - 16.0)))
    p_node, length = s.p_nodes[i], s.l_nodes[j]
    iron = get_material("iron")
    energy = math.hypot(p_node, 0.1056583755)
    expected = _published_total(energy - 0.1056583755) * iron.density * length
    tabulated = _mean(tables.loss[m, i, j], U_LOSS) * iron.density * length
    _, fraction = above_cut(energy, iron, s.v_catastrophic)
    catastrophic = energy * fraction * iron.density * length
    print(f"p = {p_node:.2f} GeV/c, {length:g} cm iron: tables {tabulated:.4f} + catastrophic {catastrophic:.4f} GeV, "
          f"published {expected:.4f} GeV")
    assert tabulated + catastrophic == pytest.approx(expected, rel=rel)


def test_top_node_keeps_the_samples_mean_square():
    """The angle table of a Gaussian core with a sparse a^-3 tail reaching 49 widths (Geant4's
    single scattering): drawn as the kernel's sampler interpolates it
    (`kernel_sampler.inverse_cdf`, 2 x 10^5 draws), its mean square is the samples' (within
    2 %), where the top node at the largest sample gives 9 % more."""
    from types import SimpleNamespace

    from shipfastsim.plugins.fast_shield.kernel_sampler import grid_arrays, inverse_cdf
    from shipfastsim.plugins.fast_shield.tables import U_ANGLE, match_second_moment

    rng = np.random.default_rng(3)
    a = np.hypot(*rng.standard_normal((2, 10000)))
    a[:12] = 4.3 * (49.0 / 4.3) ** rng.random(12)  # a sparse tail between the last nodes
    raw = np.quantile(a, U_ANGLE)
    adjusted = match_second_moment(raw, U_ANGLE, float(np.mean(a**2)))
    uniform = np.random.default_rng(4).random(200_000)
    u, inv_du, grid = grid_arrays()
    grids = SimpleNamespace(u=u, inv_du=inv_du, grid=grid)

    def mean_square(q):
        values = np.asarray(q, dtype=np.float64)
        return float(np.mean([inverse_cdf(grids, 1, values, 0, r)[0] ** 2 for r in uniform]))

    target = float(np.mean(a**2))
    print(f"mean square: samples {target:.3f}, top node at the largest sample {mean_square(raw):.3f}, "
          f"moved to {adjusted[-1]:.1f}: {mean_square(adjusted):.3f}")
    assert mean_square(adjusted) == pytest.approx(target, rel=0.02)
    assert mean_square(raw) > 1.05 * target  # what the adjustment is for
