"""``shipfastsim tables build`` writes loadable, versioned tables for a geometry's materials."""

import numpy as np
import pytest

from shipfastsim.cli import main
from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import GeometryLookup, load_geometry
from shipfastsim.plugins.fast_shield import make_transport
from shipfastsim.plugins.fast_shield.compare import run_fast, target_sample
from shipfastsim.plugins.fast_shield.tables import U_LOSS, load_tables, loss_table_mean, match_sample_mean


def test_tables_build_for_another_geometry(tmp_path, capsys):
    geometry = GEOMETRY_DIR / "test_short_shield.yaml"
    assert main(["tables", "build", "--geometry", str(geometry), "--output", str(tmp_path), "--samples", "100"]) == 0
    written = list(tmp_path.glob("step_tables_v*_*.npz"))
    assert len(written) == 1 and str(written[0]) in capsys.readouterr().out
    tables = load_tables(written[0])
    materials = GeometryLookup(load_geometry(geometry)).materials
    assert list(tables.settings.materials) == [(n, float(s)) for n, s in materials]
    params = {"geometry": str(geometry), "tables": str(written[0])}
    hits = run_fast(target_sample(300, seed=1), ["shield_end"], seed=2, params=params)
    assert hits.reached["shield_end"].any()
    make_transport(params)


def test_tables_build_rejects_too_few_samples(tmp_path, capsys):
    assert main(["tables", "build", "--output", str(tmp_path), "--samples", "5"]) == 2
    assert "at least 100" in capsys.readouterr().err


def test_match_sample_mean_moves_only_the_top_node():
    quantiles = np.linspace(0.0, 1.0, len(U_LOSS)) ** 4 * 10.0  # convex, like a radiative tail

    mean = loss_table_mean
    # Half of what the last interval (width 1e-4 in u) can take away.
    target = mean(quantiles) - 0.25 * (U_LOSS[-1] - U_LOSS[-2]) * (quantiles[-1] - quantiles[-2])
    fixed = match_sample_mean(quantiles, target, cap=100.0)
    assert np.array_equal(fixed[:-1], quantiles[:-1]) and fixed[-1] < quantiles[-1]
    assert abs(mean(fixed) - target) < 1e-9
    assert match_sample_mean(quantiles, 1e3, cap=100.0)[-1] == pytest.approx(100.0), "never beyond the cap"
    lowest = match_sample_mean(quantiles, 0.0, cap=100.0)[-1]
    assert quantiles[-2] <= lowest == pytest.approx(quantiles[-2]), "quantiles stay ordered"
