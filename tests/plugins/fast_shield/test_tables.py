"""Step tables: build, versioned save/load, size and content of the shipped file."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from shipfastsim.geometry import get_material
from shipfastsim.plugins.fast_shield import DEFAULT_TABLES
from shipfastsim.plugins.fast_shield import tables as tables_module
from shipfastsim.plugins.fast_shield.tables import (
    FORMAT_VERSION,
    U_LOSS,
    TableSettings,
    build_tables,
    load_tables,
    loss_table_mean,
    save_tables,
    tables_filename,
    u_grid,
)
from shipfastsim.plugins.reference.physics import StepPhysics

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
    tables = load_tables(DEFAULT_TABLES, expected=TableSettings())
    for array in (tables.loss, tables.angle, tables.disp):
        assert np.isfinite(array).all() and (array >= 0).all()


@pytest.mark.parametrize(("p", "rel"), [(5.0, 0.02), (50.0, 0.03), (200.0, 0.10)])
def test_shipped_tables_reproduce_the_reference_mean_loss(p, rel, above_cut):
    """Mean tabulated loss over 16 cm of iron plus the mean of the catastrophic losses
    the tables leave to the sampler (their cross-section integral above
    v_catastrophic) vs the reference's mean dE/dx.  At high momentum the mean rests on
    rare losses, so 200,000 samples per bin fix it to a few percent only; and the
    reference's own sampling is biased up there by a few percent."""
    tables = load_tables(DEFAULT_TABLES)
    s = tables.settings
    m = tables.material_index("iron", 1.0)
    i = int(np.argmin(np.abs(np.log(s.p_nodes / p))))
    j = int(np.argmin(np.abs(s.l_nodes - 16.0)))
    p_node, length = s.p_nodes[i], s.l_nodes[j]
    iron = get_material("iron")
    physics = StepPhysics([(iron, 1.0)])
    energy = torch.tensor([math.hypot(p_node, 0.1056583755)], dtype=torch.float64)
    expected = float(physics.mean_dedx(0, energy)["total"][0]) * iron.density * length
    tabulated = _mean(tables.loss[m, i, j], U_LOSS) * iron.density * length
    _, fraction = above_cut(float(energy[0]), iron, s.v_catastrophic)
    catastrophic = float(energy[0]) * fraction * iron.density * length
    assert tabulated + catastrophic == pytest.approx(expected, rel=rel)
