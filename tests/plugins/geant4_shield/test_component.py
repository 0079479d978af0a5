"""geant4-shield as a pipeline stage: configs, reproducibility whatever the workers, and installation."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import yaml

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.batch import MuonBatch
from shipfastsim.config import load_config
from shipfastsim.configs import CONFIG_DIR, GEOMETRY_DIR
from shipfastsim.data import DATA_DIR
from shipfastsim.plugins.geant4_shield.runtime import INSTALL_HINT
from shipfastsim.runner import run_production


def _run(path, **overrides) -> dict:
    return run_production(load_config(path, overrides), progress=False)


def _muons(summary) -> MuonBatch:
    return MuonBatch.concat([read_ntuple(f["path"])[0] for f in summary["files"]])


@pytest.fixture
def geant4_config(write_config, target_sample, tmp_path):
    def make(executor: dict | None = None, name: str = "g4.yaml", **run):
        document = {
            "version": 1,
            "run": {"events": 600, "chunk_size": 200, "seed": 7,
                    "output": {"path": str(tmp_path / name.replace(".yaml", "") / "muons.root")}, **run},
            "stages": [
                {"generator": "fairship-file", "params": {"files": [str(target_sample)]}},
                {"augmenter": "phi-rotation", "params": {"copies": 2}},
                {"propagator": "geant4-shield", "plane": "shield_end",
                 "params": {"geometry": str(GEOMETRY_DIR / "test_short_shield.yaml")}},
            ],
        }
        if executor:
            document["run"]["executor"] = executor
        return write_config(document, name=name)
    return make


def test_same_chunks_same_muons_whatever_the_workers(geant4_config):
    serial = _run(geant4_config())
    muons = _muons(serial)
    again = _muons(_run(geant4_config(name="again.yaml")))
    parallel = _muons(_run(geant4_config({"type": "dask", "workers": 2}, name="dask.yaml")))
    other = _muons(_run(geant4_config(name="seed8.yaml", seed=8)))
    assert 0.9 * 1200 < len(muons) <= 1200  # 7 m of iron: nearly every muon of the sample passes
    assert muons.equals(again) and muons.equals(parallel)
    assert not (len(other) == len(muons) and torch.equal(other.px, muons.px))
    counters = serial["counters"]
    assert sum(v for k, v in counters.items() if k.startswith("geant4-shield/") and k.endswith("/generated")) == 1200
    assert sum(v for k, v in counters.items() if k.endswith("/shield_end")) == len(muons)


def test_shipped_config_runs_and_agrees_with_fast_shield(tmp_path, write_config):
    """configs/geant4_transport.yaml, 3,000 muons through TRY_2025, against fast-shield on the same
    muons: the shield-end survival per charge within 3 binomial sigma of the difference."""
    document = yaml.safe_load((CONFIG_DIR / "geant4_transport.yaml").read_text())
    document["run"].update(events=3000, chunk_size=1500)
    document["stages"][0]["params"]["files"] = [str(DATA_DIR / "target_muons_10k.root")]
    runs = {}
    for name in ("geant4-shield", "fast-shield"):
        document["stages"][-1]["propagator"] = name
        document["stages"][-1]["params"] = {"geometry": str(GEOMETRY_DIR / "ship_try2025.yaml")}
        document["run"]["output"]["path"] = str(tmp_path / f"{name}.root")
        runs[name] = _run(write_config(document, name=f"{name}.yaml"))
    counters = runs["geant4-shield"]["counters"]
    for charge, pdg in (("mu+", -13), ("mu-", 13)):
        # The same input muons for both: the generated count from geant4-shield's counters.
        n = sum(v for k, v in counters.items() if k.startswith(f"geant4-shield/{charge}/") and k.endswith("/generated"))
        reached = {name: int((_muons(summary).pdg_id == pdg).sum()) for name, summary in runs.items()}
        a, b = reached["geant4-shield"] / n, reached["fast-shield"] / n
        sigma = math.sqrt(a * (1 - a) / n + b * (1 - b) / n)
        print(f"{charge}: geant4 {a:.4f}, fast {b:.4f} ({(a - b) / sigma:+.2f} sigma)")
        assert 0.6 < a < 0.9 and abs(a - b) < 3 * sigma


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GEANT4_DATA_DIR", "G4"))} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          stdin=subprocess.DEVNULL, timeout=300)


def test_no_dataset_download_even_with_ci_true(tmp_path):
    """With CI=true and no GEANT4_DATA_DIR the bindings would download their datasets; the plugin
    sets up its stand-ins first, transports muons, and the process exits cleanly (status 0)."""
    code = (
        "import torch\n"
        "from shipfastsim.configs import GEOMETRY_DIR\n"
        "from shipfastsim.geometry import load_geometry\n"
        "from shipfastsim.plugins.geant4_shield.transport import Geant4Transport\n"
        "g = load_geometry(GEOMETRY_DIR / 'test_short_shield.yaml')\n"
        "pos = torch.zeros(20, 3); mom = torch.zeros(20, 3); mom[:, 2] = 100.0\n"
        "r = Geant4Transport(g).propagate(pos, mom, torch.ones(20), 'shield_end', seed=1)\n"
        "print('reached', int(r.reached['shield_end'].sum()))\n"
    )
    result = _python(code, CI="true", SHIPFASTSIM_CACHE=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reached 20" in result.stdout
    assert "download" not in (result.stdout + result.stderr).lower()
    assert (tmp_path / "geant4-data" / "G4ENSDFSTATE3.0" / "ENSDFSTATE.dat").exists()


def test_missing_bindings_give_the_install_hint(tmp_path):
    code = (
        "import sys; sys.modules['geant4_pybind'] = None\n"
        "from shipfastsim.plugins.geant4_shield.runtime import import_geant4\n"
        "try:\n    import_geant4()\nexcept ImportError as e:\n    print('ERROR', e)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ERROR {INSTALL_HINT}"
    assert "pip install geant4-pybind" in INSTALL_HINT


def test_check_refuses_a_plane_inside_a_magnet(write_config, target_sample, tmp_path, capsys):
    from shipfastsim.cli import main

    from .conftest import MAGNET_Z, slab_and_magnet

    geometry = slab_and_magnet()
    geometry["planes"][1]["z"] = MAGNET_Z[0] + 10.0  # inside the magnet
    path = tmp_path / "inside.yaml"
    path.write_text(yaml.safe_dump(geometry))
    document = {"version": 1, "run": {"events": 10, "chunk_size": 10, "seed": 1,
                                      "output": {"path": str(tmp_path / "out" / "m.root")}},
                "stages": [{"generator": "fairship-file", "params": {"files": [str(target_sample)]}},
                           {"propagator": "geant4-shield", "plane": "after_slab", "params": {"geometry": str(path)}}]}
    status = main(["check", str(write_config(document))])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1
    assert error.startswith("shipfastsim: error: stages[1].params.geometry: geant4-shield: recording plane "
                            "'after_magnet' at z = 610.0 cm lies inside Mag"), error
    assert not (tmp_path / "out").exists()
