"""``shipfastsim validate --transport-copies``: the rates after the shield of both samples,
against a production run of the same muons and against a planted softer candidate."""

from __future__ import annotations

import json

import pytest

from shipfastsim.adapters.fairship import read_ntuple, write_ntuple
from shipfastsim.cli import main

COPIES = 4


@pytest.fixture(scope="module")
def softer(target_sample, tmp_path_factory):
    """The shipped 10k target muons with every momentum halved: far fewer get through."""
    batch, _ = read_ntuple(target_sample)
    path = tmp_path_factory.mktemp("softer") / "softer.root"
    write_ntuple(path, batch.replace(px=batch.px / 2, py=batch.py / 2, pz=batch.pz / 2))
    return path


def _validate(tmp_path, reference, candidate, *extra):
    output = tmp_path / "report"
    status = main(["validate", "--reference", str(reference), "--candidate", str(candidate), "--output",
                   str(output), "--transport-copies", str(COPIES), "--max-rows", "20000", *extra])
    assert status == 0
    return json.loads((output / "transport_rates.json").read_text()), (output / "transport_rates.md").read_text()


def _pull(a: dict, b: dict) -> float:
    return (a["rate"] - b["rate"]) / (a["error"] ** 2 + b["error"] ** 2) ** 0.5


def test_rates_of_the_same_muons_agree_with_a_production_run(target_sample, tmp_path, write_config):
    """The sample against itself (other rotations): every rate within 3 sigma.  The shield-end
    rate against `shipfastsim run` of the same muons (fairship-file -> phi-rotation -> fast-shield,
    the default geometry): muons written / rows transported within 4 of the reported errors."""
    rates, table = _validate(tmp_path, target_sample, target_sample)
    assert rates["geometry"] == "ship_try2026.yaml" and rates["copies"] == COPIES
    for label in ("shield_end", "P1", "P2"):
        reference, candidate = rates["reference"][label], rates["candidate"][label]
        assert reference["rows"] == candidate["rows"] == 10_000 * COPIES
        assert abs(_pull(candidate, reference)) < 3.0, (label, reference, candidate)
    assert "| shield_end |" in table and "| P1 |" in table
    run = write_config({"version": 1,
                        "run": {"events": 10_000, "chunk_size": 5_000, "seed": 9,
                                "output": {"path": str(tmp_path / "run" / "out.root")}},
                        "stages": [{"generator": "fairship-file", "params": {"files": [str(target_sample)]}},
                                   {"augmenter": "phi-rotation", "params": {"copies": COPIES}},
                                   {"propagator": "fast-shield", "plane": "shield_end"}]})
    assert main(["run", str(run), "--no-progress"]) == 0
    written, _ = read_ntuple(tmp_path / "run" / "out.root")
    reference = rates["reference"]["shield_end"]
    assert abs(len(written) / (10_000 * COPIES) - reference["rate"]) < 4.0 * reference["error"]


def test_a_softer_candidate_is_caught(target_sample, softer, tmp_path):
    """Halved momenta: the shield-end rate falls far beyond its errors (measured: ratio about 0.6)."""
    rates, _ = _validate(tmp_path, target_sample, softer)
    reference, candidate = rates["reference"]["shield_end"], rates["candidate"]["shield_end"]
    assert candidate["rate"] / reference["rate"] < 0.9 and _pull(candidate, reference) < -5.0


def test_the_reference_split_and_bad_options(target_sample, tmp_path, capsys):
    """--reference-split holdout counts only the holdout's muons (10 % of 10k); a negative
    copy count and a missing geometry are refused in one line."""
    rates, _ = _validate(tmp_path, target_sample, target_sample, "--reference-split", "holdout")
    assert 800 < rates["reference"]["shield_end"]["sources"] < 1200
    for bad, message in ((["--transport-copies", "-1"], "--transport-copies -1"),
                         (["--transport-copies", "2", "--geometry", str(tmp_path / "none.yaml")], "no such file")):
        status = main(["validate", "--reference", str(target_sample), "--candidate", str(target_sample),
                       "--output", str(tmp_path / "bad"), *bad])
        assert status != 0 and message in capsys.readouterr().err
