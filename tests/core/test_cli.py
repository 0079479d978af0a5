import json

from shipfastsim.cli import main


def test_run_prints_summary_and_writes_json(tmp_path, write_config, capsys):
    assert main(["run", str(write_config()), "--no-progress", "--events", "600"]) == 0
    out = capsys.readouterr().out
    assert "phi-rotation" in out and "1,800" in out and "muons/s" in out
    summary = json.loads((tmp_path / "out" / "muons.summary.json").read_text())
    assert summary["muons_generated"] == 600 and summary["muons_out"] == 1800


def test_check_reports_the_plan(write_config, capsys):
    assert main(["check", str(write_config())]) == 0
    assert "generator fairship-file -> augmenter phi-rotation" in capsys.readouterr().out


def test_output_override_is_relative_to_the_working_directory(tmp_path, write_config, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(write_config()), "--no-progress", "--output", "here/x.root", "--seed", "9"]) == 0
    assert (tmp_path / "here" / "x.root").exists()


def test_existing_output_needs_resume(write_config, capsys):
    path = str(write_config())
    assert main(["run", path, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", path, "--no-progress"]) == 1
    assert "pass --resume" in capsys.readouterr().err
    assert main(["run", path, "--no-progress", "--overwrite", "--events", "300"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["run", path, "--resume", "--overwrite"]) == 2
