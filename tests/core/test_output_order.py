"""Row order of the output: any contiguous range of entries is an unbiased sample.

FairShip jobs simulate consecutive entries (``run_simScript.py -i FIRST -n N``).  With
the copies of a muon next to each other, ``-n 1000`` of a 100-copy file would simulate
10 distinct muons; the output must instead look like a random choice of rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import uproot
from scipy import stats

from shipfastsim.config import load_config
from shipfastsim.output import chunk_row_order
from shipfastsim.runner import run_production

EVENTS, COPIES, CHUNK = 3000, 100, 1500


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory, target_sample):
    import yaml

    tmp_path = tmp_path_factory.mktemp("order")
    config = tmp_path / "replay.yaml"
    config.write_text(yaml.safe_dump({
        "version": 1,
        "run": {"events": EVENTS, "chunk_size": CHUNK, "seed": 8, "output": {"path": str(tmp_path / "r.root")}},
        "stages": [{"generator": "fairship-file", "params": {"files": [str(target_sample)]}},
                   {"augmenter": "phi-rotation", "params": {"copies": COPIES}}],
    }))
    with pytest.warns(UserWarning):  # the shipped sample's muons per POT are unknown
        summary = run_production(load_config(config), progress=False)
    with uproot.open(summary["files"][0]["path"]) as file:
        return file["pythia8-Geant4"].arrays(["event_id", "pz"], library="np")


def test_first_percent_of_the_file_is_an_unbiased_sample(replay_file):
    event_id, pz = replay_file["event_id"].astype(np.int64), replay_file["pz"]
    assert len(event_id) == EVENTS * COPIES
    head = slice(0, len(event_id) // 100)
    distinct = np.unique(event_id[head])
    # Reference: the distinct muons in 1 % of the rows of chunk 0 chosen at random.
    rng = np.random.default_rng(0)
    chunk_rows = np.repeat(np.arange(CHUNK), COPIES)
    reference = [len(np.unique(rng.choice(chunk_rows, head.stop, replace=False))) for _ in range(50)]
    print(f"distinct muons in the first 1 %: {len(distinct)} (random rows: {np.mean(reference):.0f} "
          f"+- {np.std(reference):.0f}; copies adjacent: {head.stop // COPIES})")
    assert abs(len(distinct) - np.mean(reference)) < 5 * np.std(reference) + 1
    # The same distribution as the whole file: pz of those muons against all muons.
    first_row = np.unique(event_id, return_index=True)[1]
    result = stats.ks_2samp(pz[head][np.unique(event_id[head], return_index=True)[1]], pz[first_row])
    print(f"KS first 1 % vs all: D={result.statistic:.4f}, p={result.pvalue:.3f}")
    assert result.pvalue > 1e-3


def test_copies_of_a_muon_are_spread_over_the_chunk(replay_file):
    event_id = replay_file["event_id"].astype(np.int64)
    adjacent_equal = np.mean(event_id[1:] == event_id[:-1])
    # Random order within a chunk: a neighbour is a copy with probability (k - 1) / (n k - 1).
    assert adjacent_equal < 5 * (COPIES - 1) / (CHUNK * COPIES - 1)


def test_row_order_depends_only_on_seed_and_chunk():
    first = chunk_row_order(1000, seed=4, chunk=7)
    np.testing.assert_array_equal(first, chunk_row_order(1000, seed=4, chunk=7))
    assert sorted(first) == list(range(1000))
    assert not np.array_equal(first, chunk_row_order(1000, seed=4, chunk=8))
    assert not np.array_equal(first, chunk_row_order(1000, seed=5, chunk=7))
