"""A third-party plugin, pip-installed for real, is found through its entry point."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "particle-gun"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]))


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "shipfastsim.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_plugins_lists_the_entry_point_component(installed_example):
    result = _cli(installed_example, "plugins")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "particle-gun" in line)
    print(line)
    assert line.split()[0] == "generator"
    assert "shipfastsim-particle-gun 0.1.0" in line
    assert "- momentum (float, default 100.0)" in result.stdout
    assert "fairship-file" in result.stdout and "[bundled" in result.stdout


def test_entry_point_component_runs_from_yaml(tmp_path, installed_example):
    config = {
        "version": 1,
        "run": {"events": 500, "chunk_size": 200, "seed": 1, "output": {"path": "gun.root"}},
        "stages": [{"generator": "particle-gun", "params": {"momentum": 50.0, "charge": "mu+"}},
                   {"augmenter": "phi-rotation", "params": {"copies": 2}}],
    }
    (tmp_path / "gun.yaml").write_text(yaml.safe_dump(config))
    result = _cli(installed_example, "run", str(tmp_path / "gun.yaml"), "--no-progress")
    assert result.returncode == 0, result.stderr
    from shipfastsim.adapters.fairship import read_ntuple

    muons, _ = read_ntuple(tmp_path / "gun.root")
    assert len(muons) == 1000 and (muons.pdg_id == -13).all()
    assert abs(float(muons.pz.mean()) - 50.0) < 1e-9


def test_without_the_package_the_component_is_unknown(tmp_path, write_config):
    document = yaml.safe_load(write_config().read_text())
    document["stages"][0] = {"generator": "particle-gun"}
    result = _cli(dict(os.environ), "check", str(write_config(document, name="gun.yaml")))
    assert result.returncode == 2
    assert "stages[0].generator: unknown generator 'particle-gun'; registered: fairship-file" in result.stderr
