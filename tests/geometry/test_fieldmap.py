"""Field maps in FairShip's format: files written by real ROOT, interpolation, errors, transport."""

from __future__ import annotations

import copy
import math
from array import array

import numpy as np
import pytest
import torch
import yaml

from shipfastsim.configs import GEOMETRY_DIR
from shipfastsim.geometry import GeometryLookup, geometry_from_dict
from shipfastsim.geometry.fieldmap import FieldMapError, read_field_map, write_field_map

SHORT = GEOMETRY_DIR / "test_short_shield.yaml"


def _linear(x, y, z):
    """A field linear in x, y, z: trilinear interpolation reproduces it exactly."""
    return 0.01 * x + 0.02 * y - 0.003 * z, 1.5 - 0.004 * x + 0.001 * z, 0.002 * y


def _write_with_root(path, lower, step, shape):
    """Range and Data trees with Float_t branches, filled as ShipBFieldMap reads them."""
    ROOT = pytest.importorskip("ROOT")
    f = ROOT.TFile(str(path), "RECREATE")
    rng = ROOT.TTree("Range", "Range")
    values = {}
    for axis, name in enumerate("xyz"):
        upper = lower[axis] + (shape[axis] - 1) * step[axis]
        for key, v in ((f"{name}Min", lower[axis]), (f"{name}Max", upper), (f"d{name}", step[axis])):
            values[key] = array("f", [v])
            rng.Branch(key, values[key], f"{key}/F")
    rng.Fill()
    data = ROOT.TTree("Data", "Data")
    b = {k: array("f", [0.0]) for k in ("Bx", "By", "Bz")}
    for k, buf in b.items():
        data.Branch(k, buf, f"{k}/F")
    for i in range(shape[0]):  # ascending z, then y, then x
        for j in range(shape[1]):
            for k in range(shape[2]):
                field = _linear(lower[0] + i * step[0], lower[1] + j * step[1], lower[2] + k * step[2])
                b["Bx"][0], b["By"][0], b["Bz"][0] = field
                data.Fill()
    f.Write()
    f.Close()


def test_map_written_by_root_is_read_and_interpolated_as_fairship(tmp_path):
    path = tmp_path / "linear.root"
    _write_with_root(path, (0.0, 0.0, -20.0), (5.0, 4.0, 10.0), (9, 11, 7))
    fmap = read_field_map(path, offset=(0.0, 0.0, 100.0), symmetric=True)
    assert tuple(fmap.grid.shape) == (9, 11, 7, 3)
    gen = torch.Generator().manual_seed(3)
    n = 2000
    x = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 80.0  # map: |x| <= 40
    y = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 80.0  # map: |y| <= 40
    z = 100.0 - 20.0 + torch.rand(n, generator=gen, dtype=torch.float64) * 60.0
    bx, by, bz = fmap(x, y, z)
    ex, ey, ez = _linear(x.abs(), y.abs(), z - 100.0)  # quadrant symmetry: fold, then signs
    sx, sy = torch.sign(x), torch.sign(y)
    assert torch.allclose(bx, ex * sx * sy, atol=2e-6) and torch.allclose(by, ey, atol=2e-6)
    assert torch.allclose(bz, ez * sy, atol=2e-6)
    # Outside the range (|x| > 40 or z beyond the map) there is no field.
    far = fmap(torch.tensor([41.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 0.0], dtype=torch.float64),
               torch.tensor([100.0, 141.0], dtype=torch.float64))
    assert all(torch.equal(c, torch.zeros(2, dtype=torch.float64)) for c in far)


def test_our_writer_makes_files_root_reads(tmp_path):
    ROOT = pytest.importorskip("ROOT")
    grid = np.arange(4 * 3 * 2 * 3, dtype=np.float32).reshape(4, 3, 2, 3)
    path = write_field_map(tmp_path / "m.root", grid, (0.0, 0.0, 0.0), (1.0, 2.0, 3.0))
    f = ROOT.TFile(str(path))
    rng, data = f.Get("Range"), f.Get("Data")
    rng.GetEntry(0)
    assert (rng.xMax, rng.dy, rng.zMax) == (3.0, 2.0, 3.0)
    assert data.GetEntries() == 24
    data.GetEntry((2 * 3 + 1) * 2 + 1)  # node (2, 1, 1)
    assert (data.Bx, data.By, data.Bz) == tuple(float(v) for v in grid[2, 1, 1])
    f.Close()


def test_missing_and_malformed_maps_name_the_file(tmp_path):
    with pytest.raises(FieldMapError, match="nowhere.root: file not found"):
        read_field_map(tmp_path / "nowhere.root")
    text = tmp_path / "text.root"
    text.write_text("not a ROOT file\n")
    with pytest.raises(FieldMapError, match="text.root: not a readable ROOT file"):
        read_field_map(text)
    import uproot

    zeros = {k: np.zeros(5, np.float32) for k in ("Bx", "By", "Bz")}
    with uproot.recreate(tmp_path / "norange.root") as f:
        f.mktree("Data", dict.fromkeys(zeros, np.float32)).extend(zeros)
    with pytest.raises(FieldMapError, match="norange.root: no 'Range' TTree"):
        read_field_map(tmp_path / "norange.root")
    short = write_field_map(tmp_path / "short.root", np.zeros((3, 3, 3, 3)), (0, 0, 0), (1, 1, 1))
    with uproot.update(short) as f:
        del f["Data"]
        f.mktree("Data", dict.fromkeys(zeros, np.float32)).extend(zeros)
    with pytest.raises(FieldMapError, match="short.root: Range gives"):
        read_field_map(short)
    data = yaml.safe_load(SHORT.read_text())
    data["shield"]["field"] = {"model": "map", "map": str(tmp_path / "absent.root")}
    with pytest.raises(FieldMapError, match="absent.root"):
        GeometryLookup(geometry_from_dict(data))


@pytest.fixture(scope="module")
def map_and_uniform(tmp_path_factory):
    """TEST_SHORT's flux-conserving field sampled on a 1 cm x 1 cm x 5 cm grid, written
    in FairShip's format, and the same geometry reading it back as a map."""
    data = yaml.safe_load(SHORT.read_text())
    data["shield"]["field"] = {"model": "flux-conserving"}
    uniform = geometry_from_dict(data)
    lookup = GeometryLookup(uniform)
    z0 = uniform.magnets[0].z_start  # FairShip's offset: the first magnet's entrance
    lower, step = (0.0, 0.0, 0.0), (1.0, 1.0, 5.0)
    xs, ys = np.arange(0.0, 141.0, step[0]), np.arange(0.0, 111.0, step[1])
    zs = np.arange(0.0, uniform.shield_z_end - z0 + 5.0, step[2])
    xx, yy, zz = np.meshgrid(xs, ys, zs + z0, indexing="ij")
    b = lookup.field_at(torch.from_numpy(xx.ravel()), torch.from_numpy(yy.ravel()), torch.from_numpy(zz.ravel()))
    grid = torch.stack(b, 1).numpy().reshape(*xx.shape, 3)
    path = write_field_map(tmp_path_factory.mktemp("map") / "TEST_SHORT.root", grid, lower, step)
    mapped = copy.deepcopy(data)
    mapped["shield"]["field"] = {"model": "map", "map": str(path)}
    return uniform, geometry_from_dict(mapped)


def test_map_geometry_reproduces_the_field_it_was_written_from(map_and_uniform):
    uniform, mapped = map_and_uniform
    a, b = GeometryLookup(uniform), GeometryLookup(mapped)
    gen = torch.Generator().manual_seed(5)
    x, y = ((torch.rand(20000, generator=gen, dtype=torch.float64) - 0.5) * 260 for _ in range(2))
    z = 150.0 + torch.rand(20000, generator=gen, dtype=torch.float64) * 750.0
    ua, ub = torch.stack(a.field_at(x, y, z)), torch.stack(b.field_at(x, y, z))
    same = (ua - ub).abs().amax(0) < 1e-5
    # Away from part edges (within a grid cell of one) the interpolated map is the uniform field.
    assert same.float().mean() > 0.9
    assert torch.equal(a.material_at(x, y, z), b.material_at(x, y, z))


def test_transport_through_the_map_agrees_with_the_uniform_model(map_and_uniform):
    from shipfastsim.plugins.fast_shield import DEFAULT_TABLES
    from shipfastsim.plugins.fast_shield.stepper import FastTransport
    from shipfastsim.plugins.fast_shield.tables import load_tables

    uniform, mapped = map_and_uniform
    tables = load_tables(DEFAULT_TABLES)
    n = 3000
    gen = torch.Generator().manual_seed(8)
    pos = torch.zeros((n, 3), dtype=torch.float64)
    mom = torch.stack([torch.randn(n, generator=gen, dtype=torch.float64) * 0.8,
                       torch.randn(n, generator=gen, dtype=torch.float64) * 0.8,
                       10.0 + 150.0 * torch.rand(n, generator=gen, dtype=torch.float64)], 1)
    charge = torch.where(torch.rand(n, generator=gen) < 0.5, 1.0, -1.0).double()
    results = []
    for geometry in (uniform, mapped):
        transport = FastTransport(geometry, tables)
        results.append(transport.propagate(pos, mom, charge, ["shield_end"], torch.Generator().manual_seed(9)))
    reached = [r.reached["shield_end"] for r in results]
    fractions = [float(r.double().mean()) for r in reached]
    err = math.sqrt(2 * fractions[0] * (1 - fractions[0]) / n)
    print(f"reached: uniform {fractions[0]:.4f}, map {fractions[1]:.4f} (+-{err:.4f})")
    assert abs(fractions[0] - fractions[1]) < 3 * err
    for sign in (1.0, -1.0):  # the bending: mean x at the shield end per charge
        xa = results[0].state["shield_end"][reached[0] & (charge == sign), 0]
        xb = results[1].state["shield_end"][reached[1] & (charge == sign), 0]
        tol = 3 * math.hypot(xa.std() / math.sqrt(len(xa)), xb.std() / math.sqrt(len(xb)))
        print(f"q={sign:+.0f}: <x> uniform {xa.mean():.2f} cm, map {xb.mean():.2f} cm (+-{tol / 3:.2f})")
        assert abs(xa.mean() - xb.mean()) < tol and abs(xa.mean()) > 3 * tol
