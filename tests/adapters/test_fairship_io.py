"""FairShip ntuples: our writer, our reader, and real ROOT reading them as FairShip does."""

import numpy as np
import pytest
import torch
import uproot

from shipfastsim.adapters.fairship import (
    BRANCH_OF_COLUMN,
    TREE_NAME,
    batch_to_branches,
    count_muons,
    read_ntuple,
    write_ntuple,
)
from shipfastsim.batch import MuonBatch
from shipfastsim.data import HOLDOUT_MUONS
from shipfastsim.units import FairShipFrame

BRANCHES = list(BRANCH_OF_COLUMN.values())

# The branch-reading loop of FairShip's MuonBackGenerator: Float_t variables bound
# with TTree::SetBranchAddress, the x..pz set chosen by the number of leaves.
FAIRSHIP_STYLE_READER = r"""
#include <TFile.h>
#include <TTree.h>
#include <string>
#include <vector>
std::vector<float> shipfastsim_read_like_fairship(const char* path, std::vector<std::string> names) {
  TFile file(path);
  TTree* tree = (TTree*)file.Get("pythia8-Geant4");
  if (!tree || tree->GetListOfLeaves()->GetSize() >= 17) return {};
  std::vector<Float_t> values(names.size());
  for (size_t i = 0; i < names.size(); ++i) tree->SetBranchAddress(names[i].c_str(), &values[i]);
  std::vector<float> out;
  out.reserve(tree->GetEntries() * names.size());
  for (Long64_t entry = 0; entry < tree->GetEntries(); ++entry) {
    tree->GetEntry(entry);
    out.insert(out.end(), values.begin(), values.end());
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def root_reader():
    ROOT = pytest.importorskip("ROOT", reason="PyROOT not installed (pip install root)")
    ROOT.gInterpreter.Declare(FAIRSHIP_STYLE_READER)

    def read(path):
        values = np.asarray(ROOT.shipfastsim_read_like_fairship(str(path), BRANCHES), dtype=np.float32)
        assert values.size, f"ROOT could not read {path} as FairShip does"
        return {name: values[i::len(BRANCHES)] for i, name in enumerate(BRANCHES)}

    return read


def test_round_trip_is_exact(tmp_path, holdout_sample):
    original, skipped = read_ntuple(holdout_sample)
    assert skipped == 1 and len(original) == HOLDOUT_MUONS  # the id-0 padding row at the end is not a muon
    write_ntuple(tmp_path / "copy.root", original)
    copy, _ = read_ntuple(tmp_path / "copy.root")
    assert copy.equals(original)
    with uproot.open(holdout_sample) as a, uproot.open(tmp_path / "copy.root") as b:
        mine = b[TREE_NAME].arrays(library="np")
        theirs = a[TREE_NAME].arrays(library="np", entry_stop=len(original))
        for name in BRANCHES:
            np.testing.assert_array_equal(mine[name], theirs[name])


#: What FairShip's MuonBackGenerator reads (shipgen/MuonBackGenerator.cxx, see
#: ../shared/notes/fairship.md): Float_t branches, these always, x..pz only with fewer than
#: 17 leaves (else it reads ox..opz), release_time, mother_id and process_id when present.
FAIRSHIP_REQUIRED = ["id", "parentid", "pythiaid", "ecut", "w", "x", "y", "z", "px", "py", "pz"]
FAIRSHIP_OPTIONAL = ["release_time", "mother_id", "process_id"]


def test_schema_is_what_fairship_reads(tmp_path, holdout_sample, target_sample):
    from tests.conftest import SHARED_SAMPLE

    write_ntuple(tmp_path / "new.root", read_ntuple(target_sample, entry_stop=10)[0])
    files = [holdout_sample, target_sample, tmp_path / "new.root"]
    for path in files + ([SHARED_SAMPLE] if SHARED_SAMPLE.exists() else []):  # the original, where present
        with uproot.open(path) as file:
            tree = file[TREE_NAME]
            assert set(FAIRSHIP_REQUIRED + FAIRSHIP_OPTIONAL) <= set(tree.keys()), path
            assert list(tree.keys()) == BRANCHES and len(tree.keys()) < 17
            assert all(tree[b].typename == "float" for b in BRANCHES)


def test_frame_conversion(target_sample):
    batch, _ = read_ntuple(target_sample)
    raw = uproot.open(target_sample)[TREE_NAME].arrays(["x", "z"], library="np")
    np.testing.assert_array_equal(batch.x.numpy(), raw["x"].astype(np.float64) * 100)
    # Target start at z = -50 m in the ntuple is z = target_z0 = 0 cm in our frame.
    assert 0 <= batch.z.min() and batch.z.max() <= 5000
    shifted, _ = read_ntuple(target_sample, FairShipFrame(target_z0=-100.0))
    assert torch.allclose(shifted.z, batch.z - 100.0)


def test_real_root_reads_our_file_like_fairship(tmp_path, root_reader):
    """Values chosen by hand, expected values computed by hand: FairShip wants metres with
    the target start at z = -50 m (z_ntuple = z / 100 - 50), GeV/c, Float_t."""
    columns = {"x": [123.0, -0.5], "y": [-40.0, 2.0], "z": [1000.0, 0.0], "px": [0.25, -1.5],
               "py": [-0.75, 3.0], "pz": [150.0, 20.0], "pdg_id": [13, -13], "weight": [0.125, 2.0],
               "event_id": [7, 8], "parent_id": [211, 321], "process_id": [4, 5]}
    batch = MuonBatch.from_columns({k: torch.tensor(v) for k, v in columns.items()})
    write_ntuple(tmp_path / "ours.root", batch)
    from_root = root_reader(tmp_path / "ours.root")
    expected = {"x": [1.23, -0.005], "y": [-0.4, 0.02], "z": [-40.0, -50.0], "px": [0.25, -1.5],
                "py": [-0.75, 3.0], "pz": [150.0, 20.0], "id": [13, -13], "w": [0.125, 2.0],
                "event_id": [7, 8], "parentid": [211, 321], "process_id": [4, 5]}
    for name, values in expected.items():
        np.testing.assert_array_equal(from_root[name], np.float32(values), err_msg=name)


def test_real_root_and_our_reader_agree_on_the_holdout_sample(root_reader, holdout_sample):
    from_root = root_reader(holdout_sample)
    batch, _ = read_ntuple(holdout_sample)
    assert len(from_root["id"]) == HOLDOUT_MUONS + 1 and len(batch) == HOLDOUT_MUONS
    ours = batch_to_branches(batch)
    is_muon = np.abs(from_root["id"]) == 13
    for name in BRANCHES:
        np.testing.assert_array_equal(from_root[name][is_muon], ours[name], err_msg=name)


def test_count_and_partial_reads(target_sample):
    assert count_muons(target_sample) == 10_000
    part, _ = read_ntuple(target_sample, entry_start=100, entry_stop=200)
    whole, _ = read_ntuple(target_sample)
    assert part.equals(whole.select(torch.arange(100, 200)))


def test_missing_tree_is_a_clear_error(tmp_path):
    with uproot.recreate(tmp_path / "other.root") as file:
        file["events"] = {"x": np.zeros(3, dtype=np.float32)}
    with pytest.raises(KeyError, match="pythia8-Geant4"):
        read_ntuple(tmp_path / "other.root")


def test_run_simscript_command_for_a_range_and_an_offset():
    """From mutation testing: -n counts the entries after -i; the SetTarget offset is in metres."""
    from shipfastsim.adapters.fairship import run_simscript_command

    reading = run_simscript_command("out.root", entries=1000, kind="shield_end", rotated=False,
                                    ntuple_z_offset=7084.5, first=200)
    assert reading["command"].endswith("--MuonBack -f out.root -i 200 -n 800 --SmearBeam 0 --PaintBeam 0")
    assert "primGen.SetTarget(ship_geo.target.z0 + 70.845*u.m)" in " ".join(reading["notes"])
    assert " -n 0" in run_simscript_command("o.root", entries=5, kind="target", rotated=True, first=9)["command"]


@pytest.mark.parametrize(("name", "algorithm"), [("zstd", "ZSTD"), ("zlib", "ZLIB"), ("lz4", "LZ4"), ("none", None)])
def test_compression_is_the_one_asked_for(tmp_path, target_sample, name, algorithm):
    write_ntuple(tmp_path / "c.root", read_ntuple(target_sample, entry_stop=50)[0], compression=name)
    with uproot.open(tmp_path / "c.root") as file:
        assert type(file.file.compression).__name__ == algorithm if algorithm else file.file.compression is None


def test_iter_ntuple_streams_every_muon_once(target_sample):
    from shipfastsim.adapters.fairship import iter_ntuple

    parts = list(iter_ntuple(target_sample, step=3000))
    assert [len(p) for p in parts] == [3000, 3000, 3000, 1000]
    assert MuonBatch.concat(parts).equals(read_ntuple(target_sample)[0])


def test_run_simscript_notes_for_the_default_offset():
    from shipfastsim.adapters.fairship import run_simscript_command

    notes = " ".join(run_simscript_command("o.root", entries=10, kind="target", rotated=True)["notes"])
    assert "FairShip up to 2025" in notes and "ntuple_z_offset: 7084.5" in notes
