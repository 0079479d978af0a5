"""shipfastsim.errors: one base for every error raised on purpose, and the command line's
exit status for each (2: the input was at fault, 1: otherwise)."""

from __future__ import annotations

import inspect

import pytest

from shipfastsim import errors
from shipfastsim.cli import main
from shipfastsim.errors import ConfigError, ShipFastSimError, StepError, UsageError


def test_every_error_class_is_a_shipfastsim_error():
    """A script catches all of them with ``except ShipFastSimError``; each keeps the builtin
    base a caller may already catch (ValueError, RuntimeError)."""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, BaseException) and c.__module__ == errors.__name__]
    assert {c.__name__ for c in classes} == {"ShipFastSimError", "ConfigError", "UsageError", "StepError"}
    assert all(issubclass(c, ShipFastSimError) for c in classes)
    assert issubclass(ConfigError, ValueError) and issubclass(StepError, RuntimeError)
    assert set(errors.__all__) >= {c.__name__ for c in classes}


@pytest.mark.parametrize(("error", "status"), [(ConfigError("run.seed", "must be an integer"), 2),
                                               (UsageError("no such file: x.yaml"), 2),
                                               (StepError("train chain: the sample step's process was killed"), 1)])
def test_the_command_line_prints_one_line_with_its_status(monkeypatch, capsys, error, status):
    """Raised by a command, each is one line on standard error, with exit status 2 for bad
    input and 1 for a failed step."""
    from shipfastsim import cli

    parser = cli.build_parser()

    def fail(args):
        raise error

    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    args = parser.parse_args(["plugins"])
    monkeypatch.setattr(args, "func", fail, raising=False)
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)
    assert main(["plugins"]) == status
    err = capsys.readouterr().err
    assert err == f"shipfastsim: error: {error}\n", err
