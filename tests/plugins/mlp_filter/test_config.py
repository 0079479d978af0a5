"""configs/dangerous_muons.yaml (TRY_2026, the default) and configs/try2025_dangerous_muons.yaml
run end to end (a small slice of each) with the filter's report."""

import json

import pytest

from shipfastsim.adapters.fairship import read_ntuple
from shipfastsim.cli import main
from shipfastsim.configs import CONFIG_DIR


@pytest.mark.parametrize(("name", "generator"), [("dangerous_muons.yaml", "flow-target"),
                                               ("try2025_dangerous_muons.yaml", "gan-target")])
def test_dangerous_muons_config_runs_the_filtered_chain(tmp_path, capsys, name, generator):
    output = tmp_path / "dangerous.root"
    status = main(["run", str(CONFIG_DIR / name), "--events", "3000", "--output", str(output), "--overwrite"])
    assert status == 0 and output.is_file()
    summary = json.loads((tmp_path / "dangerous.summary.json").read_text())
    stages = {s["component"]: s for s in summary["stages"]}
    assert list(stages) == [generator, "phi-rotation", "mlp-filter", "fast-shield", "decay-vessel-subset"]
    filtered = stages["mlp-filter"]
    assert filtered["muons_in"] == 30000 and filtered["muons_out"] < filtered["muons_in"]
    # Russian roulette: the weighted total after the filter estimates the one before it, within
    # 4 standard deviations of the roulette (n_below muons of equal weight kept with q = 0.01).
    counters = {k.split("/")[-1]: v for k, v in summary["counters"].items() if k.startswith("mlp-filter/")}
    n_below = counters["muons_in"] - counters["muons_passed"]
    sigma = (n_below * (1 / 0.01 - 1)) ** 0.5 / counters["muons_in"]
    assert abs(filtered["weight_out"] / filtered["weight_in"] - 1) < 4 * sigma
    report = next(text for text in summary["reports"] if text.startswith("mlp-filter"))
    assert "reduction factor" in report and "would lose" in report
    assert "reduction factor" in capsys.readouterr().out
    muons, _ = read_ntuple(output)
    assert len(muons) == stages["decay-vessel-subset"]["muons_out"] > 0
    assert (muons.z - 3312.0).abs().max() < 1e-3  # at the decay-vessel entrance, inside its aperture:
    assert (muons.x.abs() <= 50.0 + 1e-4).all() and (muons.y.abs() <= 135.0 + 1e-4).all()
