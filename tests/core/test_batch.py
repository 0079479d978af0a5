import numpy as np
import pytest
import torch

from shipfastsim.batch import COLUMNS, MuonBatch


@pytest.fixture
def batch():
    n = 5
    return MuonBatch.from_columns({
        "pdg_id": [13, -13, 13, -13, 13], "x": np.arange(n), "y": np.zeros(n), "z": np.full(n, 10.0),
        "px": np.ones(n), "py": np.zeros(n), "pz": np.arange(n) + 10.0,
    })


def test_columns_have_declared_dtypes_and_defaults(batch):
    for name, (dtype, _, _) in COLUMNS.items():
        assert getattr(batch, name).dtype == dtype
    assert torch.all(batch.weight == 1) and torch.all(batch.event_id == 0)


def test_numpy_view_is_zero_copy(batch):
    arrays = batch.to_numpy()
    arrays["px"][0] = 42.0
    assert batch.px[0] == 42.0


def test_awkward_view_is_zero_copy(batch):
    records = batch.to_awkward()
    assert records.fields == list(COLUMNS)
    assert np.shares_memory(np.asarray(records["pz"]), batch.pz.numpy())


def test_select_concat_and_derived_quantities(batch):
    mu_plus = batch.select(batch.pdg_id == -13)
    assert len(mu_plus) == 2 and torch.all(mu_plus.charge == 1)
    both = MuonBatch.concat([batch, mu_plus])
    assert len(both) == 7
    assert torch.allclose(batch.pt, torch.ones(5, dtype=torch.float64))
    assert torch.allclose(batch.p, torch.sqrt(1 + batch.pz**2))


def test_bad_columns_are_rejected(batch):
    with pytest.raises(ValueError, match="shape"):
        batch.replace(px=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="float64"):
        batch.replace(px=torch.zeros(5, dtype=torch.float32))
    with pytest.raises(KeyError, match="unknown"):
        MuonBatch.from_columns({"pdg_id": [13], "x": [0], "y": [0], "z": [0], "px": [0], "py": [0], "pz": [1],
                                "energy": [1]})
