"""``shipfastsim train chain``'s arguments: what is refused before any work, as a usage error."""

from __future__ import annotations

from shipfastsim.cli import main
from shipfastsim.configs import GEOMETRY_DIR


def test_missing_geometry_or_truth_is_a_usage_error(tmp_path, capsys):
    assert main(["train", "chain", "--output", str(tmp_path / "x"), "--truth", "fast-shield"]) == 2
    assert "--geometry" in capsys.readouterr().err
    assert main(["train", "chain", "--output", str(tmp_path / "x"), "--truth", "fast-shield",
                 "--geometry", str(tmp_path / "none.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_geometry_without_a_decay_vessel_is_a_usage_error(tmp_path, capsys):
    """test_short_shield.yaml has no decay_vessel section: no P1 or P2 labels."""
    status = main(["train", "chain", "--output", str(tmp_path / "x"), "--truth", "fast-shield",
                   "--geometry", str(GEOMETRY_DIR / "test_short_shield.yaml")])
    assert status == 2
    assert "TEST_SHORT has no decay_vessel section" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_counts_below_one_are_usage_errors(tmp_path, capsys, vessel_geometry):
    for option in ("--muons", "--copies", "--workers", "--chunk"):
        status = main(["train", "chain", "--output", str(tmp_path / "x"), "--truth", "fast-shield",
                       "--geometry", str(vessel_geometry), option, "0"])
        assert status == 2 and f"{option} 0: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fewer_than_four_knots_is_a_usage_error(tmp_path, capsys, vessel_geometry):
    status = main(["train", "chain", "--output", str(tmp_path / "x"), "--truth", "fast-shield",
                   "--geometry", str(vessel_geometry), "--knots", "3"])
    assert status == 2 and "--knots 3: a Gaussianising map needs at least 4 knots" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
