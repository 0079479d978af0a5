"""The training-data recipe: the default chain's stages, per-chunk seeds, labels, the split by target muon."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shipfastsim.configs import DEFAULT_GEOMETRY
from shipfastsim.geometry import load_geometry
from shipfastsim.geometry.decay_vessel import DecayVessel
from shipfastsim.plugins.nf_after_shield.data import COPIES, SPLIT_FRACTIONS, make_training_data, split_indices


@pytest.fixture(scope="module")
def small_runs():
    """200 and 100 flow-target muons (x 10 phi copies) in chunks of 100, eager transport, in this process."""
    threads = torch.get_num_threads()
    try:
        return make_training_data(200, chunk=100, workers=1), \
            make_training_data(100, chunk=100, workers=1)
    finally:
        torch.set_num_threads(threads)


def test_split_keeps_the_copies_of_a_target_muon_together():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(5000), rng.integers(1, 11, 5000))  # like the shield-end survivors of 10 copies
    split = split_indices(groups)
    sides = [set(groups[rows].tolist()) for rows in split.values()]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(len(groups)))
    expected = (SPLIT_FRACTIONS[0], SPLIT_FRACTIONS[1], 1 - sum(SPLIT_FRACTIONS))
    for side, fraction in zip(sides, expected, strict=True):
        assert len(side) == pytest.approx(5000 * fraction, abs=1)  # fractions of target muons, not of rows
    assert all(np.array_equal(a, b) for a, b in zip(split.values(), split_indices(groups).values(), strict=True))


def test_rows_are_transported_copies_with_their_labels(small_runs):
    data, _ = small_runs
    assert data.n_target == 200 * COPIES
    counts = np.bincount(data.groups(), minlength=200)
    # the default geometry, TRY_2026: 69.4 % reach the shield end (z = 3193 cm, end of Magn7)
    assert counts.max() <= COPIES and 0.5 < len(data.label) / data.n_target < 0.9
    assert np.all(data.state[:, 4] > 0) and set(np.unique(data.state[:, 5])) <= {-1.0, 1.0}
    assert data.z_plane == 3193.0
    # the transport's labels (state at the vessel entrance) are those of the straight track
    # from the shield end: the 119 cm between them are air without field
    vessel = DecayVessel.from_geometry(load_geometry(DEFAULT_GEOMETRY))
    s = data.state
    straight = vessel.labels(s[:, 0], s[:, 1], np.full(len(s), data.z_plane), s[:, 2], s[:, 3], s[:, 4]).numpy()
    assert np.array_equal(straight, data.label)


def test_chunks_are_seeded_by_their_index_alone(small_runs):
    data, first_half = small_runs
    rows = data.groups() < 100
    np.testing.assert_array_equal(data.state[rows], first_half.state)  # chunk 0 does not depend on the run size
    np.testing.assert_array_equal(data.label[rows], first_half.label)
    later = data.state[~rows]
    assert len(later) and not np.isin(later[:, 4], first_half.state[:, 4]).any()  # chunk 1: other muons
