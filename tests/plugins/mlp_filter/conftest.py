"""Fixtures of the mlp-filter tests: a synthetic labelled sample and the shipped holdout."""

from __future__ import annotations

import numpy as np
import pytest

from shipfastsim.batch import MuonBatch
from shipfastsim.plugins.mlp_filter import BUNDLED_WEIGHTS
from shipfastsim.plugins.mlp_filter.cli import HOLDOUT_NAME
from shipfastsim.plugins.mlp_filter.labels import LabelledMuons, load_labelled
from shipfastsim.units import PDG_MU_MINUS, PDG_MU_PLUS

#: The stratified copy of the bundled model's holdout split, shipped beside the weights.
HOLDOUT = BUNDLED_WEIGHTS.parent / HOLDOUT_NAME


def true_probability(state: np.ndarray) -> np.ndarray:
    """Synthetic truth: dangerous if charge-signed px is large at moderate momentum (~3 %)."""
    px, pz, q = state[:, 3], state[:, 5], state[:, 6]
    logit = -6.0 + 3.0 * (q * px) - 2.0 * np.abs(np.log(pz / 60.0))
    return 1.0 / (1.0 + np.exp(-logit))


def synthetic_sample(n: int, seed: int) -> LabelledMuons:
    """Target-like muons labelled from `true_probability` (P2, shield_end: random subsets/supersets)."""
    rng = np.random.default_rng(seed)
    state = np.stack([rng.normal(0, 0.3, n), rng.normal(0, 0.3, n), rng.exponential(20.0, n),
                      rng.normal(0, 1.0, n), rng.normal(0, 1.0, n), np.exp(rng.uniform(np.log(15), np.log(300), n)),
                      rng.choice([-1.0, 1.0], n)], axis=1).astype(np.float32)
    dangerous = rng.random(n) < true_probability(state)
    labels = {"shield_end": dangerous | (rng.random(n) < 0.5), "P1": dangerous, "P2": dangerous & (rng.random(n) < .3)}
    return LabelledMuons(state, np.arange(n), labels, np.ones(n), {"generator": "synthetic", "seed": seed})


def as_batch(sample: LabelledMuons) -> MuonBatch:
    """A `MuonBatch` of a labelled sample (its sampling weights as the muon weights)."""
    s = sample.state.astype(np.float64)
    columns = {name: s[:, j] for j, name in enumerate(("x", "y", "z", "px", "py", "pz"))}
    pdg = np.where(s[:, 6] > 0, PDG_MU_PLUS, PDG_MU_MINUS)
    return MuonBatch.from_columns(columns | {"pdg_id": pdg, "weight": sample.weight.astype(np.float64),
                                             "event_id": np.arange(len(s))})


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One torch thread: these tests run many small tensor operations, for which a second
    thread only adds synchronisation (minutes of wall time on a busy 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def holdout() -> LabelledMuons:
    return load_labelled(HOLDOUT)


@pytest.fixture(scope="session")
def holdout_batch(holdout) -> MuonBatch:
    return as_batch(holdout)
