"""The sample step in a process of its own (`steps.run_sample_isolated`): the same files as
in-process, its marker, its progress on the terminal, and a clear error when it fails.

The failing children run the functions below, named by ``module:function`` (`SAMPLE_TARGET`):
a spawned child imports its modules afresh, so a function replaced in this process would
not reach it."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from shipfastsim.errors import StepError, UsageError
from shipfastsim.plugins.train_chain import steps
from tests.plugins.train_chain.conftest import Interrupted, chain_arguments

HERE = __name__


def exit_three(settings, directory, workers, progress) -> None:
    """A child that ends at once with exit status 3, writing nothing (as a crash would)."""
    os._exit(3)


def killed(settings, directory, workers, progress) -> None:
    """A child killed by SIGKILL, as the out-of-memory killer kills it."""
    os.kill(os.getpid(), signal.SIGKILL)


def raises(settings, directory, workers, progress) -> None:
    raise RuntimeError("planted failure\nsecond line")


def usage(settings, directory, workers, progress) -> None:
    raise UsageError("planted usage error")


def ends_unmarked(settings, directory, workers, progress) -> None:
    """A child that ends with status 0 before its marker is written."""
    os._exit(0)


def _settings(geometry, output):
    from shipfastsim.cli import build_parser
    from shipfastsim.plugins.train_chain.cli import settings_from_arguments

    return settings_from_arguments(build_parser().parse_args(chain_arguments(geometry, output)))


def test_the_sample_step_in_its_own_process_makes_the_in_process_files(resumed_chain, monkeypatch, tmp_path,
                                                                        capfd):
    """The tiny chain's sample step through `run_chain`'s default (its own process): the
    arrays of its three files are those of the resumed chain's step, made in-process with
    the same arguments (seed 8), its marker is written, and its progress reaches the terminal."""
    from shipfastsim.plugins.mlp_filter.labels import load_labelled
    from shipfastsim.plugins.nf_after_shield.data import load_training_data
    from shipfastsim.plugins.train_chain.sample import load_sample

    def refuse(*args, **kwargs):
        raise AssertionError("the sample was made in the test's process")

    def stop(*args, **kwargs):
        raise Interrupted("planted: stop after the sample step")

    # make_sample refused here: the sample must be made in the child, which imports the real one
    monkeypatch.setattr(steps, "make_sample", refuse)
    monkeypatch.setitem(steps.TRAINERS, "nf-after-shield", stop)
    output = tmp_path / "out"
    with pytest.raises(Interrupted):
        steps.run_chain(_settings(resumed_chain["geometry"], output), output, workers=1, progress=True)
    # the child's progress lines are on this process's standard output (3000 muons in chunks of 1000)
    printed = capfd.readouterr().out
    assert "train chain: sample" in printed and "transport: chunk 3/3" in printed
    mine, theirs = output / "sample", resumed_chain["output"] / "sample"
    assert json.loads((mine / steps.MARKER).read_text())["step"] == "sample"

    labelled, expected = load_labelled(mine / "labelled_muons.npz"), load_labelled(theirs / "labelled_muons.npz")
    np.testing.assert_array_equal(labelled.state, expected.state)
    np.testing.assert_array_equal(labelled.group, expected.group)
    np.testing.assert_array_equal(labelled.weight, expected.weight)
    assert labelled.labels.keys() == expected.labels.keys()
    for name in expected.labels:
        np.testing.assert_array_equal(labelled.labels[name], expected.labels[name], err_msg=name)
    data, expected = load_training_data(mine / "training_data.npz"), load_training_data(theirs / "training_data.npz")
    np.testing.assert_array_equal(data.state, expected.state)
    np.testing.assert_array_equal(data.label, expected.label)
    sample, expected = load_sample(mine / "sample.npz"), load_sample(theirs / "sample.npz")
    for name in ("target", "event_id", "weight", "at_end", "end", "label"):
        np.testing.assert_array_equal(getattr(sample, name), getattr(expected, name), err_msg=name)


@pytest.mark.parametrize("target, words", [
    ("killed", "the sample step's process was killed by signal 9, SIGKILL (the out-of-memory killer"),
    ("raises", "the sample step failed in its own process with RuntimeError: planted failure;"),
    ("ends_unmarked", "the sample step's process ended without marking the step done"),
], ids=["killed", "raises", "ends-unmarked"])
def test_a_failed_sample_process_is_a_step_error_that_says_the_rerun_resumes(target, words, tmp_path,
                                                                              vessel_geometry):
    directory = tmp_path / "out" / "sample"
    directory.mkdir(parents=True)
    with pytest.raises(StepError) as error:
        steps.run_sample_isolated(_settings(vessel_geometry, tmp_path / "out"), directory, 1, False,
                                  target=f"{HERE}:{target}")
    message = str(error.value)
    assert words in message and "\n" not in message  # one line: the command line prints the first only
    assert message.endswith(f"rerunning the same command resumes from the outputs kept in {tmp_path / 'out'}")
    assert not steps.step_done(directory)


def test_a_usage_error_in_the_sample_process_is_the_same_usage_error(tmp_path, vessel_geometry):
    """E.g. a kept sample.npz of other settings: the message the in-process step would give."""
    directory = tmp_path / "sample"
    directory.mkdir()
    with pytest.raises(UsageError, match="^planted usage error$"):
        steps.run_sample_isolated(_settings(vessel_geometry, tmp_path), directory, 1, False, target=f"{HERE}:usage")


def test_the_command_line_names_the_step_and_its_exit_code(monkeypatch, tmp_path, vessel_geometry, capsys):
    """Through ``shipfastsim train chain`` (the sample step in its own process by default):
    one line, exit status 1, nothing marked; `SAMPLE_TARGET` is read here and passed to the child."""
    from shipfastsim.cli import main

    monkeypatch.setattr(steps, "SAMPLE_TARGET", f"{HERE}:exit_three")
    output = tmp_path / "out"
    assert main(chain_arguments(vessel_geometry, output)) == 1
    error = capsys.readouterr().err
    assert error == (f"shipfastsim: error: train chain: the sample step's process ended with exit code 3; "
                     f"rerunning the same command resumes from the outputs kept in {output}\n")
    assert not steps.step_done(output / "sample")
