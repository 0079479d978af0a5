"""Fixtures of the train-chain tests: the short test shield with a small decay vessel, and
one tiny chain, interrupted in step 2 and resumed (shared by the tests of every module)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipfastsim.configs import GEOMETRY_DIR

#: Entrance aperture half-widths [cm] of the test vessel: about a third of the muons enter it.
APERTURE = 10.0


@pytest.fixture(scope="session")
def vessel_geometry(tmp_path_factory) -> Path:
    """configs/geometry/test_short_shield.yaml with a 10 x 10 cm aperture on its decay_vessel
    plane (z = 1000 cm) and a 5 m vessel to 14 x 14 cm half-widths (it has none of its own)."""
    document = yaml.safe_load((GEOMETRY_DIR / "test_short_shield.yaml").read_text())
    document["planes"][1].update(aperture_half_x=APERTURE, aperture_half_y=APERTURE)
    document["decay_vessel"] = {"plane": "decay_vessel", "length": 500.0, "exit_half_x": 14.0, "exit_half_y": 14.0}
    path = tmp_path_factory.mktemp("geometry") / "short_vessel.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def chain_arguments(geometry: Path, output: Path, **changes) -> list[str]:
    """``shipfastsim train chain`` arguments of the tiny chain (seconds of training)."""
    values = {"--geometry": str(geometry), "--truth": "fast-shield", "--output": str(output), "--muons": "3000",
              "--copies": "4", "--chunk": "1000", "--workers": "2", "--max-steps": "40", "--eval-every": "20",
              "--filter-epochs": "2", "--hidden": "16", "--layers": "2", "--batch-size": "512", "--seed": "8"}
    values |= changes
    return ["train", "chain", *[item for pair in values.items() for item in pair], "--quiet"]


class Interrupted(RuntimeError):
    """What the planted trainer raises (a stand-in for a killed run)."""


@pytest.fixture(scope="session")
def resumed_chain(vessel_geometry, tmp_path_factory) -> dict:
    """The tiny chain run twice: the first run stops in nf-decay-vessel (its trainer raises),
    the second resumes.  Returns the output folder, the modification times of every file
    after the first run, and how often each step ran in each run."""
    from shipfastsim.cli import main
    from shipfastsim.plugins.train_chain import sample, steps

    output = tmp_path_factory.mktemp("chain") / "out"
    calls: dict[str, int] = {}
    real_make = sample.make_sample

    def counted_make(*args, **kwargs):
        calls["sample"] = calls.get("sample", 0) + 1
        return real_make(*args, **kwargs)

    def counted(name, trainer):
        def run(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return trainer(*args, **kwargs)
        return run

    def interrupted(*args, **kwargs):
        raise Interrupted("planted: the run is killed in nf-decay-vessel")

    with pytest.MonkeyPatch.context() as patch:
        # the sample step in this process: its own process (the default) would not see the
        # counting make_sample (test_isolated_sample.py runs it there and compares)
        patch.setattr(steps, "ISOLATE_SAMPLE", False)
        patch.setattr(steps, "make_sample", counted_make)
        for name, trainer in list(steps.TRAINERS.items()):
            patch.setitem(steps.TRAINERS, name, counted(name, trainer))
        real_vessel = steps.TRAINERS["nf-decay-vessel"]
        patch.setitem(steps.TRAINERS, "nf-decay-vessel", interrupted)
        with pytest.raises(Interrupted):
            main(["--debug", *chain_arguments(vessel_geometry, output)])
        first = dict(calls)
        times = {p.relative_to(output): p.stat().st_mtime_ns for p in output.rglob("*") if p.is_file()}
        calls.clear()
        patch.setitem(steps.TRAINERS, "nf-decay-vessel", real_vessel)
        assert main(chain_arguments(vessel_geometry, output, **{"--workers": "1"})) == 0
    return {"output": output, "first_calls": first, "second_calls": dict(calls), "times_after_first": times,
            "geometry": vessel_geometry}
