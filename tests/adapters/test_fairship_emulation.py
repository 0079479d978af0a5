"""FairShip's reading of our files, emulated with real ROOT: a C++ macro compiled by cling.

The macro follows ``MuonBackGenerator::Init`` and ``ReadEvent`` of FairShip
(``shipgen/MuonBackGenerator.cxx``, 2026) step by step: the key lookup of
``pythia8-Geant4`` in the first file, a ``TChain``, ``SetBranchAddress`` into
``Float_t``, the leaf-count switch at 17 between ``x..pz`` and ``ox..opz``, skipping
rows that are not muons, the energy from ``TDatabasePDG``'s muon mass, the beam offset
of ``BeamSmearingUtils::CalculateBeamOffset`` (Gaussian smearing plus painting on a
circle, in cm, added as dx/100 to metres), metres to cm, the dummy first track
(``pythiaid`` as PDG code and time, ``parentid`` as weight) and the muon with weight
``w``.  ``FairPrimaryGenerator::AddTrack`` then adds the event vertex that
``primGen.SetTarget(ship_geo.target.z0 + offset, 0.)`` of ``run_simScript.py`` set.
FairShip itself cannot be installed here: this is the closest real client.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shipfastsim.adapters.fairship import METADATA_KEY, NtupleWriter, batch_to_branches, read_ntuple
from shipfastsim.config import load_config
from shipfastsim.configs import CONFIG_DIR
from shipfastsim.runner import run_production
from shipfastsim.units import MUON_MASS, FairShipFrame

ROOT = pytest.importorskip("ROOT")

#: z of the end of the TRY_2026 muon shield (the default geometry) in FairShip's frame [cm]: the
#: end of Magn7, 2793 + 2 x 200 cm (geometry_config.py shield_db["TRY_2026"], cited in
#: configs/geometry/ship_try2026.yaml): where fast-shield records the plane shield_end.
SHIELD_END_Z = 3193.0

MACRO = r"""
#include "TChain.h"
#include "TDatabasePDG.h"
#include "TFile.h"
#include "TList.h"
#include "TMath.h"
#include "TRandom.h"
#include <string>
#include <utility>
#include <vector>

namespace sfs_emulation {

// FairPrimaryGenerator: SetTarget(z, 0) fixes the event vertex z, which AddTrack adds.
struct PrimaryGenerator {
  double targetZ = 0.;
  std::vector<double> flat;  // per track: pdg, px, py, pz, vx, vy, vz, e, tof, weight, tracked
  void SetTarget(double z, double) { targetZ = z; }
  void AddTrack(int pdg, double px, double py, double pz, double vx, double vy, double vz, int,
                bool wanttracking, double e, double tof, double weight) {
    double row[11] = {double(pdg), px, py, pz, vx, vy, vz + targetZ, e, tof, weight, double(wanttracking)};
    flat.insert(flat.end(), row, row + 11);
  }
};

// BeamSmearingUtils.cxx
std::pair<double, double> CalculateBeamOffset(double smearBeam, double paintBeam) {
  double dx = 0., dy = 0.;
  if (smearBeam > 0) { dx = gRandom->Gaus(0, smearBeam); dy = gRandom->Gaus(0, smearBeam); }
  if (paintBeam > 0) {
    double phi = gRandom->Uniform(0., 2 * TMath::Pi());
    dx += paintBeam * TMath::Cos(phi);
    dy += paintBeam * TMath::Sin(phi);
  }
  return {dx, dy};
}

class MuonBackReader {
 public:
  Float_t id, parentid, pythiaid, w, px, py, pz, vx, vy, vz, ecut;
  TChain* fTree = nullptr;
  Long64_t fNevents = 0, fn = 0;
  double fsmearBeam = 0., fPaintBeam = 0.;
  int leaves = 0;
  bool readsOrigin = false;

  bool Init(const std::vector<std::string>& fileNames, int startEvent) {
    TFile* testFile = TFile::Open(fileNames.at(0).c_str(), "READ");
    auto testKeys = testFile ? testFile->GetListOfKeys() : nullptr;
    if (testKeys == nullptr) { delete testFile; return false; }
    const bool hasPythia8Geant4 = testKeys->FindObject("pythia8-Geant4") != nullptr;
    testFile->Close();
    delete testFile;
    if (!hasPythia8Geant4) return false;  // FairShip would read it as a cbmsim file
    fn = startEvent;
    fPaintBeam = 5.;   // 5 cm, FairShip's default
    fsmearBeam = 0.8;  // 8 mm, FairShip's default
    fTree = new TChain("pythia8-Geant4");
    for (auto& f : fileNames) fTree->Add(f.c_str());
    fNevents = fTree->GetEntries();
    if (startEvent >= fNevents) return false;
    bool ok = true;
    ok &= (fTree->SetBranchAddress("id", &id) >= 0);
    ok &= (fTree->SetBranchAddress("parentid", &parentid) >= 0);
    ok &= (fTree->SetBranchAddress("pythiaid", &pythiaid) >= 0);
    ok &= (fTree->SetBranchAddress("ecut", &ecut) >= 0);
    ok &= (fTree->SetBranchAddress("w", &w) >= 0);
    leaves = fTree->GetListOfLeaves()->GetSize();
    if (leaves < 17) {
      ok &= (fTree->SetBranchAddress("x", &vx) >= 0);
      ok &= (fTree->SetBranchAddress("y", &vy) >= 0);
      ok &= (fTree->SetBranchAddress("z", &vz) >= 0);
      ok &= (fTree->SetBranchAddress("px", &px) >= 0);
      ok &= (fTree->SetBranchAddress("py", &py) >= 0);
      ok &= (fTree->SetBranchAddress("pz", &pz) >= 0);
    } else {
      readsOrigin = true;
      ok &= (fTree->SetBranchAddress("ox", &vx) >= 0);
      ok &= (fTree->SetBranchAddress("oy", &vy) >= 0);
      ok &= (fTree->SetBranchAddress("oz", &vz) >= 0);
      ok &= (fTree->SetBranchAddress("opx", &px) >= 0);
      ok &= (fTree->SetBranchAddress("opy", &py) >= 0);
      ok &= (fTree->SetBranchAddress("opz", &pz) >= 0);
    }
    return ok;
  }
  void SetSmearBeam(double sb) { fsmearBeam = sb; }
  void SetPaintRadius(double r) { fPaintBeam = r; }

  // false at the end of the tree (FairShip calls gMC->StopRun() there).
  bool ReadEvent(PrimaryGenerator* cpg) {
    auto* pdgBase = TDatabasePDG::Instance();
    double mass = 0., e = 0., tof = 0.;
    bool found_muon = false;
    while (fn < fNevents) {
      fTree->GetEntry(fn);
      fn++;
      if (TMath::Abs(static_cast<int>(id)) == 13) {
        mass = pdgBase->GetParticle(id)->Mass();
        e = TMath::Sqrt(px * px + py * py + pz * pz + mass * mass);
        tof = 0;
        found_muon = true;
        break;
      }
    }
    if (fn >= fNevents && !found_muon) return false;
    auto [dx, dy] = CalculateBeamOffset(fsmearBeam, fPaintBeam);
    vx += dx / 100.;
    vy += dy / 100.;
    cpg->AddTrack(static_cast<int>(pythiaid), px, py, pz, vx * 100., vy * 100., vz * 100., -1., false, e,
                  pythiaid, parentid);
    cpg->AddTrack(static_cast<int>(id), px, py, pz, vx * 100., vy * 100., vz * 100., -1., true, e, tof, w);
    return true;
  }
};

}  // namespace sfs_emulation
"""

COLUMNS = ("pdg", "px", "py", "pz", "vx", "vy", "vz", "e", "tof", "weight", "tracked")


@pytest.fixture(scope="module")
def fairship():
    if not hasattr(ROOT, "sfs_emulation"):
        assert ROOT.gInterpreter.Declare(MACRO), "cling could not compile the MuonBackGenerator emulation"
    return ROOT.sfs_emulation


def simulate(fairship, path, set_target_z: float, smear: float = 0.0, paint: float = 0.0, seed: int = 5):
    """What FairShip's primary generator receives for every event of ``path``."""
    reader = fairship.MuonBackReader()
    assert reader.Init(ROOT.std.vector["std::string"]([str(path)]), 0), f"MuonBackGenerator::Init fails on {path}"
    reader.SetSmearBeam(smear)
    reader.SetPaintRadius(paint)
    generator = fairship.PrimaryGenerator()
    generator.SetTarget(set_target_z, 0.0)
    ROOT.gRandom.SetSeed(seed)
    events = 0
    while reader.ReadEvent(generator):
        events += 1
    flat = np.array(generator.flat, dtype=np.float64).reshape(-1, len(COLUMNS))
    dummy, muon = flat[0::2], flat[1::2]
    assert len(muon) == events
    return reader, {n: dummy[:, i] for i, n in enumerate(COLUMNS)}, {n: muon[:, i] for i, n in enumerate(COLUMNS)}


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def target_file(tmp_path_factory, target_sample):
    """A target-level file of 1,500 shipped muons with event ids, a padding row and metadata."""
    batch = read_ntuple(target_sample, entry_stop=1500)[0]
    batch = batch.replace(event_id=torch.arange(len(batch)))
    path = tmp_path_factory.mktemp("emulation") / "target.root"
    branches = batch_to_branches(batch)
    padding = {name: np.zeros(1, dtype=">f4") for name in branches}
    metadata = {"weight_unit": "test", "pot_equivalent": 1.5e9}
    with NtupleWriter(path, metadata=metadata) as writer:
        writer.write_branches(branches)
        writer.write_branches(padding)  # an id-0 row, as SHiP GAN files end with
    return path, batch, metadata


def test_target_level_file_gives_our_muons_in_fairships_frame(fairship, target_file):
    path, batch, _ = target_file
    reader, dummy, muon = simulate(fairship, path, set_target_z=0.0 + 50 * 100)  # target.z0 + 50*u.m
    # FairShip tests GetListOfLeaves()->GetSize(), the TObjArray's capacity: 16 for our 15
    # leaves, as for the shared SHiP GAN sample; 17 leaves would switch it to ox..opz.
    assert reader.leaves == 16 and not reader.readsOrigin
    assert len(muon["pdg"]) == len(batch)  # the padding row is skipped
    ours = batch.to_numpy()
    # By hand: the ntuple holds float32 metres with the target start at z = -50 m.
    expected = {"vx": f32(ours["x"] / 100) * 100, "vy": f32(ours["y"] / 100) * 100,
                "vz": f32((ours["z"] - 5000) / 100) * 100 + 5000,
                "px": f32(ours["px"]), "py": f32(ours["py"]), "pz": f32(ours["pz"])}
    for name, values in expected.items():
        np.testing.assert_allclose(muon[name], values, rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(muon["vz"], ours["z"], rtol=0, atol=2e-4)  # within float32 of ours
    np.testing.assert_array_equal(muon["pdg"], ours["pdg_id"])
    np.testing.assert_allclose(muon["weight"], ours["weight"], rtol=1e-7)
    p2 = ours["px"] ** 2 + ours["py"] ** 2 + ours["pz"] ** 2
    np.testing.assert_allclose(muon["e"], np.sqrt(p2 + MUON_MASS**2), rtol=1e-6)
    assert np.all(muon["tracked"] == 1) and np.all(dummy["tracked"] == 0)
    # The dummy track: pythiaid as PDG code and as time of flight, parentid as weight.
    np.testing.assert_array_equal(dummy["pdg"], ours["pythia_id"])
    np.testing.assert_array_equal(dummy["tof"], ours["pythia_id"])
    np.testing.assert_array_equal(dummy["weight"], ours["parent_id"])


def test_target_level_file_with_fairships_default_beam_profile(fairship, target_file):
    """Painting (5 cm ring) and smearing (0.8 cm) move x and y only."""
    path, batch, _ = target_file
    _, _, muon = simulate(fairship, path, 5000.0, smear=0.8, paint=5.0)
    ours = batch.to_numpy()
    np.testing.assert_allclose(muon["vz"], f32((ours["z"] - 5000) / 100) * 100 + 5000, rtol=1e-7)
    radius = np.hypot(muon["vx"] - ours["x"], muon["vy"] - ours["y"])
    # Ring of radius 5 cm convolved with a 0.8 cm Gaussian: mean radius 5 + 0.8^2/(2*5) = 5.064 cm.
    assert abs(radius.mean() - 5.064) < 0.05, radius.mean()
    assert radius.std() == pytest.approx(0.8, rel=0.1)


def test_metadata_beside_the_tree_is_read_by_root_and_ignored_by_fairship(target_file):
    path, _, metadata = target_file
    file = ROOT.TFile.Open(str(path))
    try:
        keys = sorted(key.GetName() for key in file.GetListOfKeys())
        assert keys == sorted(["pythia8-Geant4", METADATA_KEY])
        stored = file.Get(METADATA_KEY)
        assert stored.ClassName() == "TObjString"
        assert json.loads(str(stored.GetString())) == metadata
        assert file.Get("pythia8-Geant4").GetListOfLeaves().GetEntries() == 15
    finally:
        file.Close()


def test_z_written_for_the_2026_settarget_offset(fairship, tmp_path, target_file):
    """run_simScript.py of 2026 places every pythia8-Geant4 file at target.z0 + 70.845 m."""
    _, batch, _ = target_file
    path = tmp_path / "offset.root"
    with NtupleWriter(path, FairShipFrame(ntuple_offset=7084.5)) as writer:
        writer.write(batch)
    _, _, muon = simulate(fairship, path, set_target_z=0.0 + 7084.5)
    # float32 metres near -70.8 m: half a unit in the last place is 3.8e-4 cm.
    np.testing.assert_allclose(muon["vz"], batch.z.numpy(), rtol=0, atol=4e-4)


def test_fairship_file_replays_a_file_written_for_the_2026_offset(tmp_path, target_file, make_context):
    from shipfastsim.config import make_stage
    from shipfastsim.registry import get_registry
    from shipfastsim.runner import apply_stage

    _, batch, _ = target_file
    path = tmp_path / "offset.root"
    with NtupleWriter(path, FairShipFrame(ntuple_offset=7084.5), metadata={"ntuple_z_offset_cm": 7084.5}) as writer:
        writer.write(batch)
    stage = make_stage("generator", "fairship-file", {"files": [str(path)]})
    replayed = apply_stage(get_registry(), stage, None, len(batch), make_context())
    np.testing.assert_allclose(replayed.z.numpy(), batch.z.numpy(), rtol=0, atol=4e-4)


@pytest.fixture(scope="module")
def shield_end_run(tmp_path_factory):
    """configs/default.yaml on 200 generated muons (x 10 phi copies)."""
    out = tmp_path_factory.mktemp("shield_end") / "default.root"
    config = load_config(CONFIG_DIR / "default.yaml", {"run.events": 200, "run.chunk_size": 100,
                                                       "run.executor": {"type": "serial"},
                                                       "run.output.path": str(out)})
    with pytest.warns(UserWarning, match="PER GENERATED MUON"):
        summary = run_production(config, progress=False)
    return out, summary


def test_shield_end_file_gives_fairship_muons_on_the_shield_end_plane(fairship, shield_end_run):
    path, summary = shield_end_run
    reader, dummy, muon = simulate(fairship, path, 5000.0)  # smearing and painting off, as the summary says
    assert "--SmearBeam 0 --PaintBeam 0" in summary["fairship"][0]["command"]
    assert "--phiRandom" not in summary["fairship"][0]["command"]
    assert reader.leaves == 16 and not reader.readsOrigin
    assert len(muon["pdg"]) == summary["muons_out"] > 0
    np.testing.assert_allclose(muon["vz"], SHIELD_END_Z, rtol=0, atol=2e-4)  # float32 metres near -18.1 m
    assert np.all(muon["pz"] > 0) and set(np.unique(muon["pdg"])) <= {13.0, -13.0}
    assert muon["weight"].sum() == pytest.approx(summary["weight_out"], rel=1e-5)
    assert dummy["pdg"].tolist() == muon["pdg"].tolist()  # pythiaid = the muon's PDG id (gan-target)


def test_shield_end_file_metadata_round_trip(shield_end_run):
    path, summary = shield_end_run
    file = ROOT.TFile.Open(str(path))
    try:
        metadata = json.loads(str(file.Get(METADATA_KEY).GetString()))
    finally:
        file.Close()
    assert metadata["config_fingerprint"] == summary["fingerprint"]
    assert metadata["entries"] == summary["muons_out"]
    assert metadata["output_kind"] == "shield_end"
    assert metadata["normalisation"] == summary["normalisation"]
    assert metadata["pot_equivalent"] is None and "generated muons" in metadata["weight_unit"]
    assert metadata["shipfastsim_version"]
