"""``shipfastsim geometry probe`` and the per-part field table of the run report."""

from __future__ import annotations

import json

import pytest

from shipfastsim.cli import main
from shipfastsim.configs import GEOMETRY_DIR

TRY2025 = GEOMETRY_DIR / "ship_try2025.yaml"


def _probe(capsys, *points, extra=()):
    args = ["geometry", "probe", str(TRY2025), "--json", *extra]
    for p in points:
        args += ["--point", *map(str, p)]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_probe_json_names_material_field_and_region(capsys):
    # Magn3 starts at 204 + 231 + 20 + 990 + 10 + 560.96 + 10 = 2025.96 cm, 465.06 cm long.
    rows = _probe(capsys, (100.0, 0.0, 2250.0), (-1.5, -10.0, 2250.0), (0.0, 0.0, 180.0), (0.0, 0.0, 100.0),
                  (0.0, 0.0, 1450.0), (0.0, -250.0, 1000.0))
    assert [r["point_cm"] for r in rows][0] == [100.0, 0.0, 2250.0]
    assert [r["region"] for r in rows] == ["Magn3/return", "Magn3/core", "proximity_shielding", "target", "TCC8",
                                           "rock"]
    assert [r["material"] for r in rows] == ["iron", "iron", "copper", "tungsten", "air", "concrete"]
    # flux-conserving, signed B = -1.91 T: core By = -1.91, return yoke By = +1.91 / 60.44
    assert rows[0]["field_T"] == pytest.approx([0.0, 1.91 / 60.44, 0.0], rel=1e-12)
    assert rows[1]["field_T"] == pytest.approx([0.0, -1.91, 0.0], rel=1e-12)
    assert all(r["field_T"] == [0.0, 0.0, 0.0] for r in rows[2:])


def test_probe_text_and_field_table(capsys):
    assert main(["geometry", "probe", str(TRY2025), "--point", "100", "0", "2250", "--fields"]) == 0
    out = capsys.readouterr().out
    assert "Magn3/return" in out and "flux-conserving" in out
    magn3 = next(line for line in out.splitlines() if line.startswith("Magn3 "))
    assert [float(v) for v in magn3.split()[1:]] == pytest.approx([-1.91, 1.91 / 60.44, -1.91 / 60.44], abs=1e-4)


def test_probe_of_a_missing_file_is_a_clear_error(capsys, tmp_path):
    missing = tmp_path / "nowhere.yaml"
    assert main(["geometry", "probe", str(missing), "--point", "0", "0", "0"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_run_report_has_the_field_table():
    from shipfastsim.configs import CONFIG_DIR
    from shipfastsim.plugins.reference.plugin import field_report

    text = field_report({"config": str(CONFIG_DIR / "reference_transport.yaml")})
    assert "TRY_2025: field model flux-conserving" in text and "Magn4" in text
