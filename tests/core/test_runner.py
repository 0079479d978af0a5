"""The runner: reproducibility, independence from workers, crash and SIGKILL recovery."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import uproot
import yaml

from shipfastsim import hookimpl
from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.batch import MuonBatch
from shipfastsim.components import ComponentSpec, FilterDecision, Parameter
from shipfastsim.config import load_config
from shipfastsim.output import OutputExistsError
from shipfastsim.registry import ComponentRegistry, get_plugin_manager
from shipfastsim.runner import run_production


def _read_all(files) -> MuonBatch:
    return MuonBatch.concat([read_ntuple(f["path"])[0] for f in files])


def _run(path, registry=None, resume=False, **overrides):
    config = load_config(path, overrides, registry=registry)
    return run_production(config, resume=resume, progress=False, registry=registry)


@pytest.fixture
def config_doc(write_config):
    return yaml.safe_load(write_config().read_text())


def test_same_seed_same_muons_and_summary(tmp_path, write_config, config_doc):
    first = _run(write_config(config_doc))
    again = _run(write_config(config_doc), **{"run.output.path": str(tmp_path / "again" / "muons.root")})
    a, b = _read_all(first["files"]), _read_all(again["files"])
    assert len(a) == 3000 and a.equals(b)
    assert abs(first["weight_out"] - 1000) < 1e-9, "phi-rotation must keep the weighted total"
    summary = json.loads((tmp_path / "out" / "muons.summary.json").read_text())
    assert [s["muons_out"] for s in summary["stages"]] == [1000, 3000]
    other_seed = _run(write_config(config_doc), **{"run.seed": 6, "run.output.path": str(tmp_path / "s6.root")})
    assert not _read_all(other_seed["files"]).equals(a)


def test_output_does_not_depend_on_workers(tmp_path, write_config, config_doc):
    serial = _read_all(_run(write_config(config_doc))["files"])
    config_doc["run"]["executor"] = {"type": "dask", "workers": 2}
    config_doc["run"]["output"]["path"] = str(tmp_path / "dask" / "muons.root")
    parallel = _read_all(_run(write_config(config_doc, name="dask.yaml"))["files"])
    assert serial.equals(parallel)


def test_files_split_at_muons_per_file(tmp_path, write_config, config_doc):
    reference = _read_all(_run(write_config(config_doc))["files"])
    config_doc["run"]["output"].update(path=str(tmp_path / "split" / "muons.root"), muons_per_file=700)
    files = _run(write_config(config_doc, name="split.yaml"))["files"]
    assert [f["entries"] for f in files] == [700, 700, 700, 700, 200]
    assert [os.path.basename(f["path"]) for f in files][:2] == ["muons_00000.root", "muons_00001.root"]
    assert _read_all(files).equals(reference)


# ---- a crash inside a stage: finished chunks stay, resume gives the same muons --------
class CrashingFilter:
    """Keeps muons with pz above a cut; raises on one chunk while ``armed``."""

    spec = ComponentSpec("crash-test", "filter", "test filter", (Parameter("pz_min", "float", 20.0),))

    def __init__(self, crash_chunk: int):
        self.crash_chunk, self.armed = crash_chunk, True

    @hookimpl
    def shipfastsim_declare_components(self):
        return [self.spec]

    @hookimpl
    def shipfastsim_filter_muons(self, stage, batch, context):
        if stage.component != "crash-test":
            return None
        if self.armed and context.chunk_index == self.crash_chunk:
            raise RuntimeError("simulated crash")
        keep = batch.pz > stage.params["pz_min"]
        return FilterDecision(keep=keep, weight=batch.weight * 2)


def test_crash_then_resume_matches_uninterrupted_run(tmp_path, write_config, config_doc):
    plugin = CrashingFilter(crash_chunk=2)
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(plugin, name="crash-test")
    registry = ComponentRegistry(manager)
    config_doc["stages"].append({"filter": "crash-test", "params": {"pz_min": 30.0}})
    config_doc["run"]["output"]["muons_per_file"] = 500
    path = write_config(config_doc)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(path, registry)
    staged = sorted(p.name for p in (tmp_path / "out" / ".muons.chunks").glob("*.bin"))
    written = json.loads((tmp_path / "out" / "muons.manifest.json").read_text())["files"]
    assert staged or written, "finished chunks must survive the crash"
    with pytest.raises(OutputExistsError, match="--resume"):
        _run(path, registry)
    plugin.armed = False
    resumed = _run(path, registry, resume=True)
    assert resumed["resumed"] and resumed["chunks_this_session"] < 4
    clean = _run(path, registry, **{"run.output.path": str(tmp_path / "clean" / "muons.root")})
    assert _read_all(resumed["files"]).equals(_read_all(clean["files"]))
    assert resumed["muons_out"] == clean["muons_out"] and resumed["stages"][2]["muons_in"] == 3000
    assert torch.all(_read_all(clean["files"]).pz > 30)


def test_resume_refuses_another_config(write_config, config_doc):
    path = write_config(config_doc)
    _run(path)
    with pytest.raises(OutputExistsError, match="different config"):
        _run(path, resume=True, **{"run.seed": 99})


def test_a_run_that_keeps_nothing_writes_a_valid_empty_file(tmp_path, write_config, config_doc):
    plugin = CrashingFilter(crash_chunk=-1)
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(plugin, name="crash-test")
    config_doc["stages"].append({"filter": "crash-test", "params": {"pz_min": 1e9}})
    summary = _run(write_config(config_doc), ComponentRegistry(manager))
    assert summary["muons_out"] == 0 and summary["chunks"] == 4
    with uproot.open(summary["files"][0]["path"]) as file:
        assert file["pythia8-Geant4"].num_entries == 0


# ---- SIGKILL mid-run ------------------------------------------------------------------
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, write_config, config_doc):
    config_doc["run"].update(events=10_000, chunk_size=25)
    config_doc["run"]["output"]["muons_per_file"] = 40_000
    config_doc["stages"][1]["params"]["copies"] = 40
    path = write_config(config_doc)
    command = [sys.executable, "-m", "shipfastsim.cli", "run", str(path), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    staging = tmp_path / "out" / ".muons.chunks"
    manifest = tmp_path / "out" / "muons.manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["files"] and len(list(staging.glob("*.bin"))) > 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"run ended before it could be killed: {process.stderr.read()}"
    done_before = len(json.loads(manifest.read_text())["files"])
    assert 0 < done_before < 10
    resumed = _run(path, resume=True)
    assert resumed["resumed"] and 0 < resumed["chunks_this_session"] < 400
    clean = _run(path, **{"run.output.path": str(tmp_path / "clean" / "muons.root")})
    ours, theirs = _read_all(resumed["files"]), _read_all(clean["files"])
    assert len(ours) == 400_000 and ours.equals(theirs)
    assert [f["entries"] for f in resumed["files"]] == [40_000] * 10
    assert np.isclose(resumed["weight_out"], 10_000)
