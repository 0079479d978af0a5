"""The shipped holdout slice is the holdout of the shared SHiP sample, as the split defines it."""

import numpy as np
import uproot

from shipfastsim.adapters.fairship import TREE_NAME
from shipfastsim.data import HOLDOUT_MUONS, HOLDOUT_SAMPLE
from shipfastsim.validation.split import split_mask
from tests.conftest import SHARED_SAMPLE


def test_holdout_slice_is_the_split_holdout():
    with uproot.open(HOLDOUT_SAMPLE) as file:
        shipped = file[TREE_NAME].arrays(library="np")
    ids = shipped["id"]
    # 50,000 muons in the SHiP file: the split puts this many in the holdout.
    assert HOLDOUT_MUONS == int(split_mask(50_000, "holdout").sum()) == len(ids) - 1
    assert np.isin(ids[:-1], [13, -13]).all() and ids[-1] == 0, "muons, then the padding row"
    assert HOLDOUT_SAMPLE.stat().st_size < 200_000
    if SHARED_SAMPLE.exists():  # beside the repository in CI: the rows must be exactly those
        with uproot.open(SHARED_SAMPLE) as file:
            full = file[TREE_NAME].arrays(library="np")
        muon_rows = np.flatnonzero(np.isin(full["id"], [13, -13]))
        rows = np.concatenate([muon_rows[split_mask(len(muon_rows), "holdout")], [len(full["id"]) - 1]])
        for name, values in shipped.items():
            np.testing.assert_array_equal(values, full[name][rows], err_msg=name)
