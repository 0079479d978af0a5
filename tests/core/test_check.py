"""``shipfastsim check``: everything that can be known without running is one line, exit 2,
and no output folder; bad command-line values are refused the same way."""

import pytest

from shipfastsim.cli import main
from shipfastsim.configs import DEFAULT_GEOMETRY

GEOMETRY = DEFAULT_GEOMETRY  # what a stage that names no geometry uses


@pytest.fixture
def base_doc(tmp_path, target_sample):
    return {"version": 1,
            "run": {"events": 600, "chunk_size": 300, "seed": 1, "output": {"path": str(tmp_path / "out" / "m.root")}},
            "stages": [{"generator": "fairship-file", "params": {"files": [str(target_sample)]}}]}


@pytest.fixture
def broken_files(tmp_path, target_sample):
    data = target_sample.read_bytes()
    (tmp_path / "truncated.root").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.root").write_bytes(b"\0" * 512 + data[512:])
    return tmp_path


def _error(capsys, argv) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"one line expected: {err}"
    return lines[0]


def _propagator(base_doc, component, plane="shield_end", **params):
    base_doc["stages"].append({"propagator": component, "plane": plane, "params": params})
    return base_doc


CASES = {
    "unknown plane": (lambda d, f: _propagator(d, "fast-shield", plane="muon_station"),
                      "stages[1].plane: 'muon_station' is not a recording plane of {geometry}; "
                      "allowed: shield_end, decay_vessel"),
    "unknown plane, reference": (lambda d, f: _propagator(d, "reference-shield", plane="decay"),
                                 "stages[1].plane: 'decay' is not a recording plane of {geometry}"),
    "step beyond the tables": (lambda d, f: _propagator(d, "fast-shield", dense_step=320),
                               "stages[1].params.dense_step: 320.0 cm exceeds the tables' longest step; "
                               "allowed: up to 160.0 cm"),
    "geometry that is a run config": (lambda d, f: _propagator(d, "reference-shield", geometry=str(f["config"])),
                                      "stages[1].params.geometry: {config} is not a shield geometry ("),
    "truncated ROOT input": (lambda d, f: d["stages"][0]["params"].update(files=[str(f["truncated"])]) or d,
                             "stages[0].params.files[0]: {truncated} is truncated: branch "),
    "corrupt ROOT input": (lambda d, f: d["stages"][0]["params"].update(files=[str(f["corrupt"])]) or d,
                           "stages[0].params.files[0]: {corrupt} is not a readable ROOT file (not a ROOT file"),
    "ROOT file without the tree": (lambda d, f: d["stages"][0]["params"].update(files=[str(f["other"])]) or d,
                                   "stages[0].params.files[0]: {other} has no tree 'pythia8-Geant4' (keys: events)"),
    "weights without sidecar": (lambda d, f: {**d, "stages": [{"generator": "gan-target",
                                                               "params": {"weights": str(f["weights"])}}]},
                                "stages[0].params.weights: {weights}: its JSON sidecar w.json"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_refuses(case, base_doc, broken_files, write_config, capsys, tmp_path):
    import numpy as np
    import uproot
    from safetensors.numpy import save_file

    with uproot.recreate(tmp_path / "other.root") as file:
        file["events"] = {"x": np.zeros(3, dtype=np.float32)}
    save_file({"a": np.zeros(2, dtype=np.float32)}, str(tmp_path / "w.safetensors"))
    files = {"truncated": broken_files / "truncated.root", "corrupt": broken_files / "corrupt.root",
             "other": tmp_path / "other.root", "weights": tmp_path / "w.safetensors",
             "config": write_config(base_doc, name="run.yaml"), "geometry": GEOMETRY}
    make, expected = CASES[case]
    path = write_config(make(base_doc, files), name="bad.yaml")
    line = _error(capsys, ["check", str(path)])
    assert line.startswith("shipfastsim: error: " + expected.format(**files)), line
    assert _error(capsys, ["run", str(path), "--no-progress"]) == line, "run refuses it before starting"
    assert not (tmp_path / "out").exists(), "nothing written"


def test_the_valid_variants_pass(base_doc, write_config, capsys):
    _propagator(base_doc, "fast-shield", plane="decay_vessel", dense_step=40, air_step=40)
    assert main(["check", str(write_config(base_doc))]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_below_one_are_refused(workers, write_config, capsys, tmp_path):
    line = _error(capsys, ["run", str(write_config()), "--workers", workers, "--no-progress"])
    assert line == f"shipfastsim: error: --workers: {workers} is below the minimum 1 (local dask workers to start)"
    assert not (tmp_path / "out").exists()


def test_errors_print_as_one_unquoted_line():
    from shipfastsim.errors import one_line

    assert one_line(KeyError("no tree 'x' in file")) == "no tree 'x' in file"
    assert one_line(ValueError("first\nsecond\nthird")) == "first (run with --debug for the full message)"
    assert one_line(ValueError("")) == "ValueError"
